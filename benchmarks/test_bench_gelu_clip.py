"""Fused bias + GELU and multi-tensor clip_grad_norm_ against their unfused forms.

GPU only (skipped without CuPy and a CUDA device). Each group's baseline is what gnn runs without
the kernel, on the same arrays in the same run (extra_info["role"] = "baseline"; the ratios are
added by benchmarks/conftest.py), and each fused entry also records its speedup measured with
CUDA events in alternation with the baseline:

- gpu-bias-gelu: GPT-2's MLP activation, (8192, 3072) float32, tanh form, forward + backward with
  the bias gradient. Fused: kernels/gelu.cu (1 + 2 launches). Unfused: the bias add, the GELU
  ufunc chain and the BLAS column sum on CuPy arrays (gnn/backend/fused/gelu.py's reference).
- gpu-clip-grad-norm: the 148 gradients of GPT-2 small (124M float32 values), max_norm 1.
  Fused: kernels/clip_grad_norm.cu (2 launches). Unfused: a norm per tensor, their norm, a
  multiply per tensor (the reference: about 4 launches per tensor).

Run: python -m pytest benchmarks/test_bench_gelu_clip.py --benchmark-only -q
"""

from __future__ import annotations

import numpy as np
import pytest
from gpu_timing import cuda_median_s, synchronized

from gnn.backend import cuda_available
from gnn.backend.fused import clip_grad_norm as fused_clip
from gnn.backend.fused import gelu as fused_gelu

GPU_MARKS = [
    pytest.mark.gpu,
    pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA device"),
]
pytestmark = GPU_MARKS

GELU_SHAPE = (8192, 3072)  # GPT-2 small's MLP: 8 sequences of 1024 tokens, 4 x 768 features
SPEC = fused_gelu.GeluSpec("tanh")


def gpt2_small_shapes() -> list[tuple[int, ...]]:
    """The parameter shapes of GPT-2 small (124M), as its gradients come."""
    c = 768
    layer = [(c,), (c,), (3 * c, c), (3 * c,), (c, c), (c,), (c,), (c,)]
    layer += [(4 * c, c), (4 * c,), (c, 4 * c), (c,)]
    return [(50257, c), (1024, c), *layer * 12, (c,), (c,)]


@pytest.fixture
def cuda_be():
    from gnn.backend import get_backend

    return get_backend("cuda")


# ---- bias + GELU ---------------------------------------------------------------------------------


def gelu_operands(be):
    rng = be.xp.random.default_rng(0)
    x = rng.standard_normal(GELU_SHAPE, dtype=np.float32)
    b = rng.standard_normal(GELU_SHAPE[1], dtype=np.float32)
    gy = rng.standard_normal(GELU_SHAPE, dtype=np.float32)
    return x, b, gy


def gelu_fused(be, x, b, gy):
    y, saved = fused_gelu.forward(be, x, b, SPEC)
    return fused_gelu.backward(be, gy, saved, SPEC, (True, True))


def gelu_unfused(be, x, b, gy):
    xp = be.xp
    h = x + b  # the Linear's bias add
    y, saved = fused_gelu.reference(xp, h, None, SPEC, be.erf)  # GELU's ufunc chain
    gx, _ = fused_gelu.reference_backward(xp, gy, saved, SPEC, (True, False), be.erf)
    return gx, be.ones_vector(gx.shape[0], gx.dtype) @ gx  # the bias gradient: column sums


@pytest.mark.benchmark(group="gpu-bias-gelu")
class TestGpuBiasGelu:
    def test_fused_kernels(self, benchmark, cuda_be):
        ops = gelu_operands(cuda_be)
        fused = cuda_median_s(lambda: gelu_fused(cuda_be, *ops))
        unfused = cuda_median_s(lambda: gelu_unfused(cuda_be, *ops))
        benchmark.pedantic(synchronized(lambda: gelu_fused(cuda_be, *ops)), rounds=10)
        # traffic: forward reads x, writes y; backward reads x, gy, writes gx (20 bytes/element)
        gbps = 20 * ops[0].size / fused / 1e9
        benchmark.extra_info.update(
            median_ms=round(fused * 1e3, 3), GBps=round(gbps, 1), speedup=round(unfused / fused, 2)
        )

    def test_unfused_composition(self, benchmark, cuda_be):
        ops = gelu_operands(cuda_be)
        benchmark.pedantic(synchronized(lambda: gelu_unfused(cuda_be, *ops)), rounds=10)
        benchmark.extra_info["role"] = "baseline"


# ---- clip_grad_norm_ -----------------------------------------------------------------------------


def gradients(be):
    rng = be.xp.random.default_rng(1)
    return [rng.standard_normal(s, dtype=np.float32) * 1e-3 for s in gpt2_small_shapes()]


@pytest.mark.benchmark(group="gpu-clip-grad-norm")
class TestGpuClipGradNorm:
    def test_fused_kernels(self, benchmark, cuda_be):
        grads = gradients(cuda_be)
        spec = fused_clip.ClipSpec(1.0)
        fused = cuda_median_s(lambda: fused_clip.forward(cuda_be, grads, spec))
        unfused = cuda_median_s(lambda: fused_clip.reference(cuda_be.xp, grads, spec))
        benchmark.pedantic(
            synchronized(lambda: fused_clip.forward(cuda_be, grads, spec)), rounds=10
        )
        benchmark.extra_info.update(
            median_ms=round(fused * 1e3, 3), speedup=round(unfused / fused, 2)
        )

    def test_unfused_reference(self, benchmark, cuda_be):
        grads = gradients(cuda_be)
        spec = fused_clip.ClipSpec(1.0)
        benchmark.pedantic(
            synchronized(lambda: fused_clip.reference(cuda_be.xp, grads, spec)), rounds=10
        )
        benchmark.extra_info["role"] = "baseline"
