"""Optimizer steps: the fused kernels (kernels/optim.cu) against the paths without them.

GPU (skipped without CuPy and a CUDA device): AdamW over GPT-2-small's 148 parameter tensors
(124M values), one step each: the per-parameter path (foreach=False, about 14 CuPy kernels per
tensor) is the baseline; against it, the flat path with the kernel (the CUDA default: a gradient
copy per tensor and one launch) and the flat path running the reference instead (about 13 kernels
over the whole buffer). SGD with momentum, the same three ways.
CPU: the per-parameter path (the CPU default) against the flat path on an MLP's parameters, so the
CPU default stays the faster one.

Each group's baseline has extra_info["role"] = "baseline"; benchmarks/conftest.py adds every other
entry's ratio to it. Run: python -m pytest benchmarks/test_bench_optim.py --benchmark-only -q
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import gnn
from gnn.backend import cuda_available
from gnn.backend.fused import Fused
from gnn.backend.fused import optim as fused_optim


def gpt2_small_shapes() -> list[tuple[int, ...]]:
    """The parameter shapes of GPT-2 small (tied embedding counted once): 148 tensors."""
    d, layers = 768, 12
    shapes: list[tuple[int, ...]] = [(50257, d), (1024, d)]
    for _ in range(layers):
        shapes += [(d,), (d,), (d, 3 * d), (3 * d,), (d, d), (d,)]  # ln_1, attention
        shapes += [(d,), (d,), (d, 4 * d), (4 * d,), (4 * d, d), (d,)]  # ln_2, MLP
    return shapes + [(d,), (d,)]  # ln_f


def mlp_shapes() -> list[tuple[int, ...]]:
    return [(784, 256), (256,), (256, 256), (256,), (256, 10), (10,)]


def _params(shapes: list[tuple[int, ...]], device: str) -> list[gnn.Tensor]:
    rng = np.random.default_rng(0)
    params = []
    for s in shapes:
        p = gnn.nn.Parameter(gnn.tensor(rng.standard_normal(s).astype(np.float32) * 0.02))
        p = p.to(device) if device != "cpu" else p
        p.grad = gnn.tensor(rng.standard_normal(s).astype(np.float32), device=device)
        params.append(p)
    return params


def _stepper(name: str, kwargs: dict[str, Any], shapes: list, device: str) -> Any:
    params = _params(shapes, device)
    opt = getattr(gnn.optim, name)(params, **kwargs)
    if device == "cpu":
        return opt.step

    import cupy

    def step() -> None:
        opt.step()
        cupy.cuda.Device().synchronize()

    return step


def _bench(benchmark: Any, step: Any, rounds: int, baseline: bool = False) -> None:
    if baseline:
        benchmark.extra_info["role"] = "baseline"  # benchmarks/conftest.py adds ratios to it
    step()  # state made, kernels compiled, flat buffers built
    benchmark.pedantic(step, rounds=rounds, warmup_rounds=1)


@pytest.fixture
def reference_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The flat path without the kernels: each rule's reference on the whole buffers."""
    for rule in ("adam", "sgd", "rmsprop"):
        ref = getattr(fused_optim, f"{rule}_reference")
        monkeypatch.setattr(fused_optim, rule, Fused(rule, ref, None))


GPU_CASES = {
    "AdamW": {"lr": 1e-4, "weight_decay": 0.1},
    "SGD": {"lr": 1e-2, "momentum": 0.9},
}


@pytest.mark.parametrize("name", list(GPU_CASES))
class TestGpuStep:
    """One optimizer step over GPT-2 small's parameters, the three ways."""

    @pytest.fixture(autouse=True)
    def _group(self, benchmark: Any, name: str) -> None:
        benchmark.group = f"optim-{name}-gpt2-small"

    @pytest.mark.gpu
    @pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA device")
    def test_per_parameter(self, benchmark, name):
        kwargs = {**GPU_CASES[name], "foreach": False}
        _bench(benchmark, _stepper(name, kwargs, gpt2_small_shapes(), "cuda"), 10, baseline=True)

    @pytest.mark.gpu
    @pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA device")
    def test_flat_fused_kernel(self, benchmark, name):
        _bench(benchmark, _stepper(name, GPU_CASES[name], gpt2_small_shapes(), "cuda"), 20)

    @pytest.mark.gpu
    @pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA device")
    def test_flat_reference(self, benchmark, name, reference_only):
        _bench(benchmark, _stepper(name, GPU_CASES[name], gpt2_small_shapes(), "cuda"), 20)


@pytest.mark.parametrize("name", ["Adam", "SGD"])
class TestCpuStep:
    """The CPU default (per parameter) against the flat path: the default must be the faster."""

    @pytest.fixture(autouse=True)
    def _group(self, benchmark: Any, name: str) -> None:
        benchmark.group = f"optim-{name}-mlp-cpu"

    def test_per_parameter(self, benchmark, name):
        kwargs = {"lr": 1e-3, "momentum": 0.9} if name == "SGD" else {"lr": 1e-3}
        _bench(benchmark, _stepper(name, kwargs, mlp_shapes(), "cpu"), 200, baseline=True)

    def test_flat(self, benchmark, name):
        kwargs = {"lr": 1e-3, "momentum": 0.9} if name == "SGD" else {"lr": 1e-3}
        _bench(benchmark, _stepper(name, {**kwargs, "foreach": True}, mlp_shapes(), "cpu"), 200)
