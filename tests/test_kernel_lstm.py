"""The fused LSTM step (kernels/lstm_cell.cu) against its reference (gnn/backend/fused/lstm.py),
and the GPU path of the LSTM layer against the cells written in primitives (gnn.nn.rnn_cells).

Kernel outputs are poisoned with NaN before each launch, so an element the kernel fails to write
shows up; the reference runs in float64 on the same data. Sizes are small (hidden 8 to 16, batch
2 to 3): the emulator (GNN_FAKE_CUDA=emulate) runs one OS thread per CUDA thread.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import gnn
from gnn import nn
from gnn.backend import NumpyBackend, cuda_available
from gnn.backend.fused import lstm
from gnn.nn import rnn_cells
from gnn.ops.rnn import recurrent_layer
from gnn.testing import gradcheck

GPU_MARKS = [
    pytest.mark.gpu,
    pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA device"),
]


def needs_gpu(test):
    """Mark a test `gpu` and skip it without CuPy and a CUDA device."""
    for mark in GPU_MARKS:
        test = mark(test)
    return test


FAKE = os.environ.get("GNN_FAKE_CUDA") == "1"  # kernels as NumPy stand-ins; launches counted
EMULATED = os.environ.get("GNN_FAKE_CUDA") == "emulate"  # kernels run on the CPU emulator
ref = NumpyBackend()
rng = np.random.default_rng(11)
DTYPES = [np.float32, np.float16]
TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float16: dict(rtol=4e-3, atol=4e-3)}


@pytest.fixture
def be(nan_filled_cuda):
    """The CUDA backend, cupy.empty NaN-filled (tests/conftest.py)."""
    return nan_filled_cuda


def gpu(a):
    import cupy

    return cupy.asarray(a)


def host(a):
    import cupy

    return cupy.asnumpy(a)


def data(shape, dtype, scale=1.0):
    """Random values in dtype, and the same values in float64 for the reference."""
    x = (rng.standard_normal(shape) * scale).astype(dtype)
    return x, x.astype(np.float64)


def nan(shape, dtype):
    return gpu(np.full(shape, np.nan, dtype))


def close(actual, expected, dtype):
    np.testing.assert_allclose(host(actual).astype(np.float64), expected, **TOL[dtype])


# ---- the reference against the primitive cell (CPU) -------------------------------------------


@pytest.mark.parametrize("zero_state", [False, True])
def test_reference_step_matches_the_primitive_cell(zero_state):
    """reference / reference_backward against rnn_cells.lstm_cell and its autograd, float64."""
    batch, n_in, hidden = 3, 4, 5
    t = lambda *shape: gnn.tensor(rng.standard_normal(shape), requires_grad=True)  # noqa: E731
    x, h, c = t(batch, n_in), t(batch, hidden), t(batch, hidden)
    if zero_state:
        h, c = gnn.zeros(batch, hidden, dtype="float64"), gnn.zeros(batch, hidden, dtype="float64")
    w_ih, w_hh, b_ih, b_hh = (
        t(4 * hidden, n_in),
        t(4 * hidden, hidden),
        t(4 * hidden),
        t(4 * hidden),
    )
    h_next, c_next = rnn_cells.lstm_cell(x, (h, c), w_ih, w_hh, b_ih, b_hh)
    gh, gc = rng.standard_normal((batch, hidden)), rng.standard_normal((batch, hidden))
    ((h_next * gnn.tensor(gh)).sum() + (c_next * gnn.tensor(gc)).sum()).backward()
    a = {k: v.detach().numpy() for k, v in dict(x=x, h=h, c=c, w_ih=w_ih, w_hh=w_hh).items()}
    bias = lstm.Bias(b_ih.detach().numpy(), b_hh.detach().numpy())
    rec = None if zero_state else a["h"] @ a["w_hh"].T
    step = lstm.reference(
        np, lstm.StepIn(a["x"] @ a["w_ih"].T, rec, None if zero_state else a["c"], bias)
    )
    np.testing.assert_allclose(step.h, h_next.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(step.c, c_next.numpy(), rtol=1e-12, atol=1e-14)
    # the gradient reaching h split in two, as the layer's loop hands it over
    half = 0.5 * gh
    c_prev = None if zero_state else a["c"]
    back = lstm.reference_backward(np, lstm.GradIn(step.gates, step.c, c_prev, half, gh - half, gc))
    np.testing.assert_allclose(back.dgates @ a["w_ih"], x.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(back.dgates.sum(axis=0), b_ih.grad.numpy(), rtol=1e-10, atol=1e-12)
    if not zero_state:
        np.testing.assert_allclose(back.dgates @ a["w_hh"], h.grad.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(back.gc_prev, c.grad.numpy(), rtol=1e-10, atol=1e-12)


# ---- the kernels ------------------------------------------------------------------------------

# (batch, hidden, has_rec, has_bias, has_c_prev): every operand present; none of the optional ones
# (a zero initial state, no bias); a hidden size that is no multiple of anything.
FORWARD_CASES = [(3, 8, True, True, True), (2, 16, False, False, False), (3, 13, True, False, True)]


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch, hidden, has_rec, has_bias, has_c_prev", FORWARD_CASES)
def test_code_path_lstm_cell_forward(be, dtype, batch, hidden, has_rec, has_bias, has_c_prev):
    xw, xw64 = data((batch, 4 * hidden), dtype, 1.5)
    rec, rec64 = data((batch, 4 * hidden), dtype, 1.5)
    b_ih, b_ih64 = data((4 * hidden,), dtype)
    b_hh, b_hh64 = data((4 * hidden,), dtype)
    c_prev, c_prev64 = data((batch, hidden), dtype, 2.0)
    step = lstm.StepIn(
        gpu(xw),
        gpu(rec) if has_rec else None,
        gpu(c_prev) if has_c_prev else None,
        lstm.Bias(gpu(b_ih), gpu(b_hh)) if has_bias else None,
    )
    gates = step.xw  # in place, as the layer runs it
    out = lstm.StepOut(gates, nan((batch, hidden), dtype), nan((batch, hidden), dtype))
    assert lstm.forward(be, step, out) is out
    want = lstm.reference(
        np,
        lstm.StepIn(
            xw64,
            rec64 if has_rec else None,
            c_prev64 if has_c_prev else None,
            lstm.Bias(b_ih64, b_hh64) if has_bias else None,
        ),
    )
    close(out.gates, want.gates, dtype)
    close(out.c, want.c, dtype)
    close(out.h, want.h, dtype)


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("in_place", [True, False])
@pytest.mark.parametrize("has_rec, has_c_prev", [(True, True), (False, False)])
def test_code_path_lstm_cell_backward(be, dtype, in_place, has_rec, has_c_prev):
    batch, hidden = 3, 8
    pre, _ = data((batch, 4 * hidden), dtype, 1.5)
    c_prev, c_prev64 = data((batch, hidden), dtype, 2.0)
    fwd = lstm.reference(np, lstm.StepIn(pre.astype(np.float64), None, c_prev64, None))
    gates, gates64 = fwd.gates.astype(dtype), fwd.gates.astype(dtype).astype(np.float64)
    c, c64 = fwd.c.astype(dtype), fwd.c.astype(dtype).astype(np.float64)
    gy_h, gy_h64 = data((batch, hidden), dtype)
    gh_rec, gh_rec64 = data((batch, hidden), dtype)
    gc, gc64 = data((batch, hidden), dtype)
    gc_dev = gpu(gc)
    grad = lstm.GradIn(
        gpu(gates),
        gpu(c),
        gpu(c_prev) if has_c_prev else None,
        gpu(gy_h),
        gpu(gh_rec) if has_rec else None,
        gc_dev,
    )
    gc_out = gc_dev if in_place else nan((batch, hidden), dtype)
    out = lstm.GradOut(nan((batch, 4 * hidden), dtype), gc_out)
    assert lstm.backward(be, grad, out) is out
    want = lstm.reference_backward(
        np,
        lstm.GradIn(
            gates64,
            c64,
            c_prev64 if has_c_prev else None,
            gy_h64,
            gh_rec64 if has_rec else None,
            gc64,
        ),
    )
    close(out.dgates, want.dgates, dtype)
    close(out.gc_prev, want.gc_prev, dtype)


@needs_gpu
def test_lstm_cell_kernels_accept_any_grid(be):
    """One block of 32 threads strides over 3 x 16 = 48 elements, forward and backward."""
    batch, hidden = 3, 16
    xw, xw64 = data((batch, 4 * hidden), np.float32, 1.5)
    c_prev, c_prev64 = data((batch, hidden), np.float32)
    gates = nan((batch, 4 * hidden), np.float32)
    c, h = nan((batch, hidden), np.float32), nan((batch, hidden), np.float32)
    x_dev, c_dev = gpu(xw), gpu(c_prev)
    one, zero = np.int32(1), np.int32(0)
    sizes = (np.int64(batch), np.int64(hidden))
    fwd = be._kernel("lstm_cell", "lstm_cell_forward_f32")
    fwd((1,), (32,), (x_dev, x_dev, x_dev, x_dev, c_dev, zero, zero, one, *sizes, gates, c, h))
    want = lstm.reference(np, lstm.StepIn(xw64, None, c_prev64, None))
    for got, expected in ((gates, want.gates), (c, want.c), (h, want.h)):
        close(got, expected, np.float32)
    gy, gy64 = data((batch, hidden), np.float32)
    dgates, gc_out = nan((batch, 4 * hidden), np.float32), nan((batch, hidden), np.float32)
    bwd = be._kernel("lstm_cell", "lstm_cell_backward_f32")
    gy_dev = gpu(gy)
    args = (gates, c, c_dev, one, gy_dev, gy_dev, zero, gy_dev, *sizes, gc_out, dgates)
    bwd((1,), (32,), args)
    saved = [host(a).astype(np.float64) for a in (gates, c)]
    back = lstm.reference_backward(np, lstm.GradIn(*saved, c_prev64, gy64, None, gy64))
    close(dgates, back.dgates, np.float32)
    close(gc_out, back.gc_prev, np.float32)


@needs_gpu
def test_float64_takes_the_reference(be):
    xw = gpu(rng.standard_normal((2, 8)))
    out = lstm.StepOut(gpu(np.zeros((2, 8))), gpu(np.zeros((2, 2))), gpu(np.zeros((2, 2))))
    lstm.forward(be, lstm.StepIn(xw, None, None, None), out)
    want = lstm.reference(np, lstm.StepIn(host(xw), None, None, None))
    np.testing.assert_allclose(host(out.h), want.h, rtol=1e-15)


# ---- the LSTM layer on the GPU path ------------------------------------------------------------


def _run(fn, layer, x, hx, leaves, weights):
    """Outputs and the gradients of a weighted sum of them for x, the states and parameters."""
    for t in [x, *leaves, *layer.parameters()]:
        t.grad = None
    out, (h, c) = fn(layer, x, hx)
    loss = sum((r * w).sum() for r, w in zip((out, h, c), weights))
    loss.backward()
    grads = [t.grad.numpy() for t in [x, *leaves, *layer.parameters()]]
    return [r.detach().numpy() for r in (out, h, c)], grads


@needs_gpu
@pytest.mark.parametrize(
    "layout",
    [
        {"num_layers": 2},
        {"num_layers": 2, "bidirectional": True, "batch_first": True},
        {"bias": False},
    ],
)
@pytest.mark.parametrize("with_state", [False, True])
def test_lstm_layer_cuda_matches_cpu(layout, with_state):
    """float32 on the GPU (the fused kernels) against the primitive cells at float64 on the CPU."""
    gnn.manual_seed(5)
    gpu_layer = nn.LSTM(5, 8, **layout, device="cuda")
    cpu_layer = nn.LSTM(5, 8, **layout, dtype="float64")
    cpu_layer.load_state_dict({k: v.to("cpu").double() for k, v in gpu_layer.state_dict().items()})
    batch, t_len, dirs = 2, 4, cpu_layer.num_layers * cpu_layer.num_directions
    shape = (batch, t_len, 5) if layout.get("batch_first") else (t_len, batch, 5)
    x = rng.standard_normal(shape)
    states = [rng.standard_normal((dirs, batch, 8)) for _ in range(2)] if with_state else []
    weights = None
    results = []
    for device, layer, fn, dtype in (
        ("cuda", gpu_layer, lambda m, x, hx: m(x, hx), "float32"),
        ("cpu", cpu_layer, rnn_cells.unrolled, "float64"),
    ):
        xt = gnn.tensor(x, dtype=dtype, device=device, requires_grad=True)
        leaves = [gnn.tensor(s, dtype=dtype, device=device, requires_grad=True) for s in states]
        hx = tuple(leaves) if leaves else None
        if weights is None:
            out, (h, c) = fn(layer, xt, hx)
            weights = [rng.standard_normal(tuple(r.shape)) for r in (out, h, c)]
        ws = [gnn.tensor(w, dtype=dtype, device=device) for w in weights]
        results.append(_run(fn, layer, xt, hx, leaves, ws))
    (fast_out, fast_grads), (spec_out, spec_grads) = results
    for a, b in zip(fast_out + fast_grads, spec_out + spec_grads):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@needs_gpu
@pytest.mark.skipif(EMULATED, reason="float64 runs no kernel: nothing for the emulator to run")
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("zero_state", [False, True])
def test_gpu_path_gradcheck(reverse, zero_state):
    """The GPU loop (float64: each step through the reference) against central differences."""

    def t(*shape):
        return gnn.tensor(rng.standard_normal(shape) * 0.7, requires_grad=True, device="cuda")

    x, h0, c0 = t(4, 2, 3), t(2, 3), t(2, 3)
    if zero_state:
        h0 = gnn.zeros(2, 3, device="cuda")
        c0 = gnn.zeros(2, 3, device="cuda")
    weights = [t(12, 3), t(12, 3), t(12), t(12)]

    def fn(x, h0, c0, *w):
        return recurrent_layer("LSTM", x, h0, c0, list(w), reverse, zero_state=zero_state)

    assert gradcheck(fn, [x, h0, c0, *weights])  # zeros made without requires_grad: not varied


@needs_gpu
@pytest.mark.skipif(not FAKE, reason="launch counts on the fake CuPy (GNN_FAKE_CUDA=1)")
@pytest.mark.parametrize("bidirectional", [False, True])
def test_a_training_step_makes_four_launches_per_time_step_and_direction(bidirectional):
    """Per step and direction: one matmul and one cell kernel forward, the same backward."""
    import cupy

    gnn.manual_seed(0)
    layer = nn.LSTM(4, 8, bidirectional=bidirectional, device="cuda")

    def launches(t_len):
        x = gnn.randn(t_len, 2, 4, device="cuda")
        for _ in range(2):  # the first run makes cached constants (a ones vector)
            for p in layer.parameters():
                p.grad = None
            with cupy.counting() as counted:
                out, _ = layer(x)
                out.sum().backward()
        return counted.launches

    dirs = 2 if bidirectional else 1
    assert launches(7) - launches(5) == (7 - 5) * 4 * dirs
