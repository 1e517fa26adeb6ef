"""kernels/optim.cu against its reference, gnn/backend/fused/optim.py, and through the optimizers.

Each test runs a few steps of one rule on the GPU (the kernel: with GNN_FAKE_CUDA=emulate the CUDA
code itself on CPU threads, with GNN_FAKE_CUDA=1 the reference behind the launch check) and the
same steps of the reference on NumPy copies, then compares parameters and state. Sizes are small
and odd (the emulator runs one OS thread per CUDA thread). Learning rate and step count come from
the DeviceClock in device memory, so the tests also check that the kernel counts its steps and
that a new lr or a loaded step count reaches it. ci/emulate.sh runs every test here in its plain
lane, and the float32 ones (`optim_kernel and float32`, any_grid, cuda_matches_cpu) under the
sanitizers; tests/cuda_cpu/mutants.py holds this kernel's mutants (`optim:`).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np
import pytest

import gnn
from gnn.backend import cuda_available
from gnn.backend.fused import optim as fo

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA device"),
]

try:  # bfloat16 kernels (kernels/optim_bf16.cu): reachable on the fake CuPy (ml_dtypes arrays)
    import ml_dtypes

    BF16 = [ml_dtypes.bfloat16]
except ImportError:
    BF16 = []
DTYPES = [np.float32, np.float16, *BF16]
# Results after a few steps: float32 up to a few roundings (GPU fused multiply-adds); 16-bit
# arrays are rounded once per step, so an ulp of the stored value.
TOL = {np.float32: 1e-5, np.float16: 2e-3}
SIZES = (1, 7, 300, 1283)  # under one warp, one block, several blocks (and a ragged end)

ADAM = [
    fo.AdamSpec(0.9, 0.999, 1e-8, 0.0),
    fo.AdamSpec(0.8, 0.99, 1e-6, 0.1, amsgrad=True),  # L2 weight decay, amsgrad
    fo.AdamSpec(0.9, 0.95, 1e-8, 0.05, decoupled=True, maximize=True),  # AdamW
]
SGD = [
    fo.SGDSpec(0.0, 0.0, 0.0),
    fo.SGDSpec(0.9, 0.0, 0.01, nesterov=True),
    fo.SGDSpec(0.5, 0.3, 0.0, maximize=True),  # dampening
]
RMSPROP = [
    fo.RMSpropSpec(0.99, 1e-8, 0.0),
    fo.RMSpropSpec(0.9, 1e-6, 0.01, momentum=0.9, centered=True),
    fo.RMSpropSpec(0.95, 1e-8, 0.0, momentum=0.5, maximize=True),
]


@pytest.fixture
def be() -> Any:
    from gnn.backend import get_backend

    return get_backend("cuda")


def _tol(dtype: Any) -> float:
    return TOL.get(dtype, 1.6e-2)  # bfloat16: 8 bits of mantissa


def _host(a: Any) -> np.ndarray:
    import cupy

    return cupy.asnumpy(a).astype(np.float64)


def _arrays(cls: type, spec: Any, n: int, dtype: Any, rng: np.random.Generator) -> tuple:
    """(device arrays, host arrays) of one rule: random parameter and gradient, state that the
    spec uses (positive where it must be: squares), None for the rest."""
    import cupy

    uses = {
        "max_exp_avg_sq": getattr(spec, "amsgrad", False),
        "momentum_buffer": getattr(spec, "momentum", 0) > 0,
        "grad_avg": getattr(spec, "centered", False),
    }
    host: dict[str, Any] = {}
    for f in fields(cls):
        if f.name == "new_buffer" or not uses.get(f.name, True):
            continue
        values = rng.standard_normal(n)
        if f.name in ("exp_avg_sq", "max_exp_avg_sq", "square_avg"):
            values = values**2 + 1.0  # centered RMSprop needs square_avg > grad_avg**2
        if f.name == "grad_avg":
            values = values * 0.1
        host[f.name] = values.astype(dtype)
    device = {k: cupy.asarray(v) for k, v in host.items()}
    return cls(**device), cls(**host)


def _run(be: Any, op: Any, ref: Any, spec: Any, dev: Any, host: Any, steps: list) -> Any:
    """Steps on both sides; steps is a list of (lr, step count) pairs."""
    clock = fo.DeviceClock()
    for lr, step in steps:
        args = (lr, step) if op is fo.adam else (lr,)
        op(be, spec, dev, *args, clock)
        ref(np, spec, host, *args)
        if isinstance(dev, fo.SGDArrays):  # only the first step makes a fresh buffer
            dev.new_buffer = host.new_buffer = False
    return clock


def _compare(dev: Any, host: Any, dtype: Any) -> None:
    for f in fields(dev):
        d, h = getattr(dev, f.name), getattr(host, f.name)
        if f.name == "grad" or not hasattr(h, "dtype"):
            continue
        expected = h.astype(np.float64)
        scale = max(1.0, float(np.abs(expected).max()))
        np.testing.assert_allclose(
            _host(d), expected, rtol=_tol(dtype), atol=_tol(dtype) * scale, err_msg=f.name
        )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", ADAM, ids=["adam", "l2_amsgrad", "adamw_maximize"])
def test_optim_kernel_adam(be, spec, dtype):
    rng = np.random.default_rng(1)
    for n in SIZES:
        dev, host = _arrays(fo.AdamArrays, spec, n, dtype, rng)
        clock = _run(be, fo.adam, fo.adam_reference, spec, dev, host, [(1e-2, 1), (1e-2, 2)])
        _compare(dev, host, dtype)
        # the kernel counted its own steps, and left no block ticket behind
        assert clock.host_steps == 2
        np.testing.assert_array_equal(_host(clock.steps), [2, 0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", SGD, ids=["plain", "nesterov_decay", "dampening_maximize"])
def test_optim_kernel_sgd(be, spec, dtype):
    rng = np.random.default_rng(2)
    for n in SIZES:
        dev, host = _arrays(fo.SGDArrays, spec, n, dtype, rng)
        if spec.momentum:
            dev.new_buffer = host.new_buffer = True
        _run(be, fo.sgd, fo.sgd_reference, spec, dev, host, [(0.1, None), (0.05, None)])
        _compare(dev, host, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", RMSPROP, ids=["plain", "centered_momentum", "momentum_maximize"])
def test_optim_kernel_rmsprop(be, spec, dtype):
    rng = np.random.default_rng(3)
    for n in SIZES:
        dev, host = _arrays(fo.RMSpropArrays, spec, n, dtype, rng)
        _run(be, fo.rmsprop, fo.rmsprop_reference, spec, dev, host, [(1e-2, None), (3e-3, None)])
        _compare(dev, host, dtype)


def test_any_grid_adam_counts_each_step_once(be):
    """Grid-stride over more elements than threads, and several blocks taking tickets: whatever
    the grid, every element is updated once per launch and the clock advances by exactly one."""
    import cupy

    rng = np.random.default_rng(4)
    spec = ADAM[1]
    n = 301
    dev, host = _arrays(fo.AdamArrays, spec, n, np.float32, rng)
    clock = fo.DeviceClock()
    clock.set(cupy, 1e-2, 0)
    for step, (blocks, threads) in enumerate([(1, 32), (3, 64), (7, 32)], start=1):
        args = (
            dev.param, dev.grad, dev.exp_avg, dev.exp_avg_sq, dev.max_exp_avg_sq, clock.lr,
            clock.steps, np.int64(n), np.float64(spec.beta1), np.float64(spec.beta2),
            np.float64(spec.eps), np.float64(spec.weight_decay), np.int32(0), np.int32(1),
            np.int32(0),
        )  # fmt: skip
        be._launch("optim", "adam_step_f32", blocks, threads, args)
        fo.adam_reference(np, spec, host, 1e-2, step)
        np.testing.assert_array_equal(_host(clock.steps), [step, 0])
    _compare(dev, host, np.float32)


def test_any_grid_sgd_and_rmsprop(be):
    import cupy

    rng = np.random.default_rng(5)
    n = 203
    clock = fo.DeviceClock()
    clock.set(cupy, 0.05)
    spec = SGD[1]
    dev, host = _arrays(fo.SGDArrays, spec, n, np.float32, rng)
    args = (
        dev.param, dev.grad, dev.momentum_buffer, clock.lr, np.int64(n), np.float64(0.9),
        np.float64(0.0), np.float64(0.01), np.int32(0), np.int32(1), np.int32(0),
    )  # fmt: skip
    be._launch("optim", "sgd_step_f32", 2, 32, args)
    fo.sgd_reference(np, spec, host, 0.05)
    _compare(dev, host, np.float32)
    spec = RMSPROP[1]
    dev, host = _arrays(fo.RMSpropArrays, spec, n, np.float32, rng)
    args = (
        dev.param, dev.grad, dev.square_avg, dev.grad_avg, dev.momentum_buffer, clock.lr,
        np.int64(n), np.float64(0.9), np.float64(1e-6), np.float64(0.01), np.float64(0.9),
        np.int32(0), np.int32(1),
    )  # fmt: skip
    be._launch("optim", "rmsprop_step_f32", 1, 64, args)
    fo.rmsprop_reference(np, spec, host, 0.05)
    _compare(dev, host, np.float32)


def test_clock_follows_the_host_lr_and_step(be):
    """A scheduler's new lr and a loaded step count reach the device; unchanged values are not
    written again (no launch in a steady step but the kernel's)."""

    rng = np.random.default_rng(6)
    spec = ADAM[0]
    dev, host = _arrays(fo.AdamArrays, spec, 64, np.float32, rng)
    # lr changes at step 2, and the step count jumps to 10 (a loaded state) at the third call
    _run(be, fo.adam, fo.adam_reference, spec, dev, host, [(1e-2, 1), (1e-3, 2), (1e-3, 10)])
    _compare(dev, host, np.float32)


def test_a_steady_step_is_one_launch(be):
    """Unchanged lr and step are not written again: the kernel is the step's only launch."""
    import cupy

    if not hasattr(cupy, "counting"):
        pytest.skip("launch counts are the fake CuPy's (GNN_FAKE_CUDA=1)")
    dev, _ = _arrays(fo.AdamArrays, ADAM[0], 64, np.float32, np.random.default_rng(8))
    clock = fo.DeviceClock()
    fo.adam(be, ADAM[0], dev, 1e-3, 1, clock)
    with cupy.counting() as counts:
        fo.adam(be, ADAM[0], dev, 1e-3, 2, clock)
    assert (counts.launches, counts.h2d, counts.syncs) == (1, 0, 0)


# ---- through the optimizers --------------------------------------------------------------------

CONFIGS = [
    ("Adam", {"weight_decay": 0.1, "amsgrad": True}),
    ("AdamW", {"weight_decay": 0.05, "maximize": True}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    ("SGD", {"lr": 0.05, "momentum": 0.5, "dampening": 0.3, "weight_decay": 0.01}),
    ("RMSprop", {"momentum": 0.9, "centered": True, "weight_decay": 0.01}),
]


def _model(device: str) -> gnn.nn.Module:
    gnn.manual_seed(0)
    model = gnn.nn.Sequential(gnn.nn.Linear(5, 7), gnn.nn.Tanh(), gnn.nn.Linear(7, 3))
    return model.to(device)


def _train(device: str, name: str, kwargs: dict[str, Any], steps: int = 3) -> Any:
    """steps of training with two groups (weights; biases with their own lr and no decay), the
    lr halved by a scheduler after each step; the last layer's weight as a NumPy array."""
    model = _model(device)
    params = dict(model.named_parameters())
    weights = [p for k, p in params.items() if k.endswith("weight")]
    biases = [p for k, p in params.items() if k.endswith("bias")]
    bias_group = {"params": biases, "lr": kwargs.get("lr", 1e-2) * 3, "weight_decay": 0.0}
    opt = getattr(gnn.optim, name)([{"params": weights}, bias_group], **kwargs)
    sched = gnn.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    rng = np.random.default_rng(7)
    x = gnn.tensor(rng.standard_normal((4, 5)).astype(np.float32), device=device)
    for _ in range(steps):
        loss = (model(x) ** 2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
        sched.step()
    return opt, model


@pytest.mark.parametrize(
    "name,kwargs", CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)]
)
def test_cuda_matches_cpu_optimizer(name, kwargs):
    """The kernel path (flat, on by default on CUDA) against the per-parameter CPU path."""
    _, cpu = _train("cpu", name, kwargs)
    opt, cuda = _train("cuda", name, kwargs)
    assert any(part.clock.lr is not None for parts in opt._flat_parts.values() for part in parts[2])
    for (k, a), (_, b) in zip(cpu.named_parameters(), cuda.named_parameters()):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-6, err_msg=k)
    state = opt.state_dict()["state"]
    assert all(isinstance(s.get("step", 0), int) for s in state.values())


def _steps(model: Any, opt: Any, x: Any, steps: int) -> None:
    for _ in range(steps):
        (model(x) ** 2).mean().backward()
        opt.step()
        opt.zero_grad()


def test_cuda_matches_cpu_after_a_resume():
    """A state saved mid-training and loaded into a new optimizer: its step count and moments
    reach the kernel (the clock is rewritten), so the resumed run equals an unbroken one."""
    x = np.random.default_rng(9).standard_normal((4, 5)).astype(np.float32)

    def adamw(model: Any) -> Any:
        return gnn.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1, amsgrad=True)

    straight = _model("cpu")
    _steps(straight, adamw(straight), gnn.tensor(x), 4)
    first = _model("cuda")
    opt = adamw(first)
    _steps(first, opt, gnn.tensor(x, device="cuda"), 2)
    resumed = _model("cuda")
    resumed.load_state_dict(first.state_dict())
    opt2 = adamw(resumed)
    opt2.load_state_dict(opt.state_dict())
    _steps(resumed, opt2, gnn.tensor(x, device="cuda"), 2)
    assert opt2.state_dict()["state"][0]["step"] == 4
    for (k, a), (_, b) in zip(straight.named_parameters(), resumed.named_parameters()):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-6, err_msg=k)


@pytest.mark.parametrize("name", ["Adam", "SGD"])
def test_cuda_matches_cpu_after_module_to(name):
    """A model moved to the GPU mid-training: its state follows, the flat buffers and the clock are
    built from the state's step count, and the kernel goes on where the CPU stopped."""
    x = np.random.default_rng(10).standard_normal((4, 5)).astype(np.float32)
    kwargs = {"lr": 1e-2, "momentum": 0.9} if name == "SGD" else {"lr": 1e-2}
    straight = _model("cpu")
    _steps(straight, getattr(gnn.optim, name)(straight.parameters(), **kwargs), gnn.tensor(x), 3)
    moved = _model("cpu")
    opt = getattr(gnn.optim, name)(moved.parameters(), **kwargs)
    _steps(moved, opt, gnn.tensor(x), 1)
    moved.to("cuda")
    _steps(moved, opt, gnn.tensor(x, device="cuda"), 2)
    assert all(
        part.clock.lr is not None for _, _, parts in opt._flat_parts.values() for part in parts
    )
    for (k, a), (_, b) in zip(straight.named_parameters(), moved.named_parameters()):
        assert b.device == "cuda"
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-6, err_msg=k)
