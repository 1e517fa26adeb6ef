"""ReLU's fused backward (kernels/relu.cu, gnn/backend/fused/relu.py, gnn/ops/elementwise.py).

CPU: the reference against the derivative written out per element, and the op's numerical
gradient check. GPU (`gpu`-marked; the fake CuPy runs them, GNN_FAKE_CUDA=emulate runs the kernel
code): the kernel bit for bit against the reference on every length class, a misaligned view, any
grid, special values (zeros of both signs, NaN, infinities), with its output poisoned with NaN.
"""

from __future__ import annotations

import numpy as np
import pytest

import gnn
from gnn.backend import NumpyBackend, cuda_available
from gnn.backend.fused import relu as fused
from gnn.testing import gradcheck

pytestmark = pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # inf * 0
ref = NumpyBackend()
rng = np.random.default_rng(5)
DTYPES = [np.float32, np.float16]
UINT = {np.dtype(np.float32): np.uint32, np.dtype(np.float16): np.uint16}


def on_gpu(test):
    """`gpu`-marked, skipped without CuPy (the fake CuPy counts as one)."""
    test = pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA device")(test)
    return pytest.mark.gpu(test)


def relu_grad_scalar(y: float, gy: float) -> float:
    """d relu / dx times gy at an output y: gy where y > 0, else gy * 0 (NaN for an infinite gy)."""
    return gy * (1.0 if y > 0 else 0.0)


# ---- CPU ----------------------------------------------------------------------------------------


def test_reference_matches_the_derivative_per_element():
    y = np.maximum(rng.standard_normal(40), 0)
    y[:3] = (0.0, -0.0, np.nan)
    gy = rng.standard_normal(40)
    gy[3:6] = (np.inf, -np.inf, np.nan)
    expect = np.array([relu_grad_scalar(a, b) for a, b in zip(y, gy)])
    np.testing.assert_array_equal(fused.backward(ref, y, gy), expect)


def test_relu_gradcheck():
    x = gnn.tensor(rng.standard_normal((4, 5)) + 0.05, dtype="float64", requires_grad=True)
    assert gradcheck(gnn.relu, (x,))


# ---- GPU: the kernel ----------------------------------------------------------------------------


@pytest.fixture
def be(nan_filled_cuda):
    """The CUDA backend, cupy.empty NaN-filled (tests/conftest.py)."""
    return nan_filled_cuda


def operands(n: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """y = relu of a normal sample (about half zeros) with special values, and gy."""
    y = np.maximum(rng.standard_normal(n) * 3, 0).astype(dtype)
    gy = rng.standard_normal(n).astype(dtype)
    special_y = (0.0, -0.0, np.nan, np.inf, 2.0, 0.0)
    special_gy = (-1.5, 2.0, 1.0, -3.0, np.nan, np.inf)
    k = min(n, len(special_y))
    y[:k], gy[:k] = special_y[:k], special_gy[:k]
    return y, gy


def assert_bits_equal(got, expect) -> None:
    import cupy

    got = cupy.asnumpy(got)
    assert got.dtype == expect.dtype and got.shape == expect.shape
    nan = np.isnan(expect)
    np.testing.assert_array_equal(np.isnan(got), nan)  # NaN where expected (any payload)
    u = UINT[got.dtype]
    np.testing.assert_array_equal(got[~nan].view(u), expect[~nan].view(u))  # zero signs too


@on_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 7, 8, 9, 4099])
def test_code_path_relu_backward(be, dtype, n):
    import cupy

    y, gy = operands(n, dtype)
    gx = fused.backward(be, cupy.asarray(y), cupy.asarray(gy))
    assert_bits_equal(gx, fused.reference_backward(np, y, gy))


@on_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_code_path_relu_backward_misaligned_and_strided(be, dtype):
    import cupy

    y, gy = operands(131, dtype)
    gx = fused.backward(be, cupy.asarray(y)[1:], cupy.asarray(gy)[1:])  # off its 16-byte start
    assert_bits_equal(gx, fused.reference_backward(np, y[1:], gy[1:]))
    y2, gy2 = y[:130].reshape(10, 13), gy[:130].reshape(10, 13)
    gx = fused.backward(be, cupy.asarray(y2)[:, ::2], cupy.asarray(gy2)[:, ::2])  # made contiguous
    assert_bits_equal(gx, fused.reference_backward(np, y2[:, ::2], gy2[:, ::2]))


@on_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_kernel_accepts_any_grid(be, dtype):
    """One block of 32 threads, and 3 blocks of 64: the grid-stride loop reaches every element."""
    import cupy

    y, gy = operands(301, dtype)
    sfx = "f32" if dtype is np.float32 else "f16"
    for grid, block in (((1,), (32,)), ((3,), (64,))):
        gx = cupy.asarray(np.full(301, np.nan, dtype))
        args = (cupy.asarray(y), cupy.asarray(gy), gx, np.int64(301))
        be._kernel("relu", f"relu_backward_{sfx}")(grid, block, args)
        assert_bits_equal(gx, fused.reference_backward(np, y, gy))


@on_gpu
def test_relu_backward_float64_and_empty_take_no_kernel(be):
    import cupy

    if not getattr(cupy, "FAKE", False):
        pytest.skip("launch counts come from the fake CuPy")
    y, gy = operands(5, np.float64)
    empty = cupy.asarray(np.empty(0, np.float32))
    with cupy.counting() as counts:
        gx = fused.backward(be, cupy.asarray(y), cupy.asarray(gy))
        assert fused.backward(be, empty, empty).shape == (0,)
    assert not any(name.startswith("relu_backward") for name in counts.by_name()), counts
    np.testing.assert_array_equal(cupy.asnumpy(gx), fused.reference_backward(np, y, gy))


@on_gpu
def test_relu_op_backward_is_one_kernel_and_matches_the_cpu():
    import cupy

    if not getattr(cupy, "FAKE", False):
        pytest.skip("launch counts come from the fake CuPy")
    x = (rng.standard_normal((6, 5)) * 2).astype(np.float32)
    x[0, :2] = (0.0, -0.0)
    grads = []
    for device in ("cpu", "cuda"):
        t = gnn.tensor(x, device=device, requires_grad=True)
        out = gnn.relu(t * 1.0)  # a non-leaf input: its gradient is relu's backward as is
        with cupy.counting() as counts:
            out.sum().backward()
        if device == "cuda":
            assert counts.by_name().get("relu_backward_f32") == 1, counts.by_name()
        grads.append(t.grad.numpy())
    np.testing.assert_array_equal(grads[0].view(np.uint32), grads[1].view(np.uint32))
