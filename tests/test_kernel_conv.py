"""Convolution and max-pooling kernels (kernels/conv.cu, gnn/backend/fused/conv.py).

CPU: the references against gnn's own NumPy conv2d / max_pool2d (forward and autograd) and
im2col against col2im as adjoints. GPU (`gpu`-marked; the fake CuPy runs the references,
GNN_FAKE_CUDA=emulate the kernel code): every kernel against the float64 reference at small sizes
(stride 1/2, padding 0/1, dilation 1/2), outputs poisoned with NaN, ties and NaNs in max pooling,
any grid, and the ops through the GPU path against the CPU (values, gradients, launch counts).
"""

from __future__ import annotations

import numpy as np
import pytest

import gnn
from gnn import functional as F
from gnn.backend import NumpyBackend, cuda_available
from gnn.backend.fused import conv as fused
from gnn.testing import gradcheck

ref = NumpyBackend()
rng = np.random.default_rng(14)
DTYPES = [np.float32, np.float16]
TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float16: dict(rtol=4e-3, atol=4e-3)}
GPU = [
    pytest.mark.gpu,
    pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA device"),
]

# (kernel, stride, padding, dilation) on a (2, 3, 6, 6) input
GEOMETRIES = {
    "3x3": ((3, 3), (1, 1), (0, 0), (1, 1)),
    "3x3 pad 1": ((3, 3), (1, 1), (1, 1), (1, 1)),
    "3x3 stride 2 pad 1": ((3, 3), (2, 2), (1, 1), (1, 1)),
    "3x3 dilation 2": ((3, 3), (1, 1), (0, 0), (2, 2)),
    "2x3 stride 2x1 pad 1x0 dilation 1x2": ((2, 3), (2, 1), (1, 0), (1, 2)),
}


def window(shape, kernel, stride, pad, dil) -> fused.Window:
    n, c, h, w = shape
    oh = (h + 2 * pad[0] - dil[0] * (kernel[0] - 1) - 1) // stride[0] + 1
    ow = (w + 2 * pad[1] - dil[1] * (kernel[1] - 1) - 1) // stride[1] + 1
    return fused.Window(n, c, h, w, *kernel, *stride, *pad, *dil, oh, ow)


# ---- CPU: the references ------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(GEOMETRIES))
def test_reference_conv_matches_conv2d_and_col2im_is_the_adjoint(case):
    kernel, stride, pad, dil = GEOMETRIES[case]
    x = rng.standard_normal((2, 3, 6, 6))
    wt = rng.standard_normal((4, 3, *kernel))
    b = rng.standard_normal(4)
    g = window(x.shape, kernel, stride, pad, dil)
    cols = fused.reference_im2col(np, x, g)
    y = fused.reference_to_image(np, wt.reshape(4, -1) @ cols, b, 2).reshape(2, 4, g.oh, g.ow)
    expect = F.conv2d(gnn.tensor(x), gnn.tensor(wt), gnn.tensor(b), stride, pad, dil)
    np.testing.assert_allclose(y, expect.numpy(), rtol=1e-12, atol=1e-12)
    c = rng.standard_normal(cols.shape)  # <im2col x, c> == <x, col2im c>
    np.testing.assert_allclose((cols * c).sum(), (x * fused.reference_col2im(np, c, g)).sum())
    gy = rng.standard_normal((2, 4, g.oh * g.ow))
    rows, gb = fused.reference_to_rows(np, gy, True)
    np.testing.assert_array_equal(fused.reference_to_image(np, rows, None, 2), gy)
    np.testing.assert_allclose(gb, gy.sum(axis=(0, 2)), rtol=1e-12)
    assert fused.reference_to_rows(np, gy)[1] is None


@pytest.mark.parametrize("case", list(GEOMETRIES))
def test_reference_max_pool_matches_max_pool2d_and_its_gradient(case):
    kernel, stride, pad, dil = GEOMETRIES[case]
    pad = tuple(min(p, k // 2) for p, k in zip(pad, kernel))
    x0 = np.round(rng.standard_normal((2, 3, 6, 6)) * 2) / 2  # ties in many windows
    g = window(x0.shape, kernel, stride, pad, dil)
    y, idx = fused.reference_max_pool(np, x0, g)
    x = gnn.tensor(x0, requires_grad=True)
    expect = F.max_pool2d(x, kernel, stride, pad, dil)
    np.testing.assert_array_equal(y, expect.numpy())
    gy = rng.standard_normal(y.shape)
    expect.backward(gnn.tensor(gy))
    gx = fused.reference_max_pool_backward(np, gy, idx, g)
    np.testing.assert_allclose(gx, x.grad.numpy(), rtol=1e-12, atol=1e-12)
    assert idx.dtype == np.int32


def test_reference_max_pool_takes_the_first_maximum_and_nan():
    g = window((1, 1, 2, 2), (2, 2), (2, 2), (0, 0), (1, 1))
    for x, tap in (([[1, 3], [3, 0]], 1), ([[1, np.nan], [2, np.nan]], 1), ([[5, 5], [5, 5]], 0)):
        y, idx = fused.reference_max_pool(np, np.array(x, float)[None, None], g)
        assert idx.item() == tap


# ---- GPU: the kernels ---------------------------------------------------------------------------


@pytest.fixture
def be(nan_filled_cuda):
    """The CUDA backend, cupy.empty NaN-filled (tests/conftest.py)."""
    return nan_filled_cuda


def gpu(a):
    import cupy

    return cupy.asarray(a)


def host(a):
    import cupy

    return cupy.asnumpy(a).astype(np.float64)


def check_conv_kernels(be, g: fused.Window, dtype) -> None:
    import cupy

    x = rng.standard_normal((g.n, g.c, g.h, g.w)).astype(dtype)
    o = 4
    y2 = rng.standard_normal((o, g.n * g.oh * g.ow)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    gcols = rng.standard_normal((g.c * g.kh * g.kw, g.n * g.oh * g.ow)).astype(dtype)
    gy = rng.standard_normal((g.n, o, g.oh * g.ow)).astype(dtype)
    with cupy.counting() as counts:
        cols = fused.im2col(be, gpu(x), g)
        img = fused.col2im(be, gpu(gcols), g)
        y = fused.to_image(be, gpu(y2), gpu(b), g.n)
        y_nb = fused.to_image(be, gpu(y2), None, g.n)
        rows, gb = fused.to_rows(be, gpu(gy), True)
        rows_nb, no_gb = fused.to_rows(be, gpu(gy))
    sfx = {np.float32: "f32", np.float16: "f16"}[dtype]
    names = counts.by_name()
    for name in ("conv_im2col", "conv_col2im"):
        assert names.get(f"{name}_{sfx}") == 1, names
    assert names.get(f"conv_to_image_{sfx}") == 2 and names.get(f"conv_to_rows_{sfx}") == 2
    f64 = np.float64
    tol = TOL[dtype]
    np.testing.assert_array_equal(host(cols), fused.reference_im2col(np, x.astype(f64), g))
    np.testing.assert_allclose(host(img), fused.reference_col2im(np, gcols.astype(f64), g), **tol)
    ry = fused.reference_to_image(np, y2.astype(f64), b.astype(f64), g.n)
    np.testing.assert_allclose(host(y), ry, **tol)
    np.testing.assert_array_equal(host(y_nb), fused.reference_to_image(np, y2, None, g.n))
    rrows, rgb = fused.reference_to_rows(np, gy.astype(f64), True)
    np.testing.assert_array_equal(host(rows), rrows)
    np.testing.assert_array_equal(host(rows_nb), rrows)
    assert no_gb is None and gb.dtype == dtype
    np.testing.assert_allclose(host(gb), rgb, rtol=tol["rtol"], atol=tol["atol"] * gy.shape[2])


def check_pool_kernels(be, g: fused.Window, dtype, x) -> None:
    gy = rng.standard_normal((g.n, g.c, g.oh, g.ow)).astype(dtype)
    y, idx = fused.max_pool(be, gpu(x), g)
    gx = fused.max_pool_backward(be, gpu(gy), idx, g)
    ry, ridx = fused.reference_max_pool(np, x.astype(np.float64), g)
    np.testing.assert_array_equal(host(y), ry)
    import cupy

    np.testing.assert_array_equal(cupy.asnumpy(idx), ridx)
    rgx = fused.reference_max_pool_backward(np, gy.astype(np.float64), ridx, g)
    np.testing.assert_allclose(host(gx), rgx, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", list(GEOMETRIES))
def test_code_path_conv_kernels(be, case, dtype):
    kernel, stride, pad, dil = GEOMETRIES[case]
    check_conv_kernels(be, window((2, 3, 6, 6), kernel, stride, pad, dil), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", list(GEOMETRIES))
def test_code_path_max_pool_kernels(be, case, dtype):
    kernel, stride, pad, dil = GEOMETRIES[case]
    pad = tuple(min(p, k // 2) for p, k in zip(pad, kernel))
    g = window((2, 3, 6, 6), kernel, stride, pad, dil)
    x = (np.round(rng.standard_normal((2, 3, 6, 6)) * 2) / 2).astype(dtype)  # ties
    x[0, 0, 0, :3] = np.nan  # NaNs: the first one wins its windows
    x[1, 2, 4, 4] = -np.inf
    check_pool_kernels(be, g, dtype, x)


for _mark in GPU:
    test_code_path_conv_kernels = _mark(test_code_path_conv_kernels)
    test_code_path_max_pool_kernels = _mark(test_code_path_max_pool_kernels)


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA device")
def test_conv_kernels_accept_any_grid(be):
    # grid-stride loops: 1 block of 32 threads and 3 blocks of 64 cover every output
    g = window((2, 3, 6, 6), (3, 3), (1, 1), (1, 1), (2, 2))
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    gcols = rng.standard_normal((27, 2 * g.oh * g.ow)).astype(np.float32)
    for blocks, threads in ((1, 32), (3, 64)):
        cols = gpu(np.full((27, 2 * g.oh * g.ow), np.nan, np.float32))
        be._kernel("conv", "conv_im2col_f32")((blocks,), (threads,), (gpu(x), *g.ints(), cols))
        np.testing.assert_array_equal(host(cols), fused.reference_im2col(np, x, g))
        img = gpu(np.full(x.shape, np.nan, np.float32))
        be._kernel("conv", "conv_col2im_f32")((blocks,), (threads,), (gpu(gcols), *g.ints(), img))
        np.testing.assert_allclose(host(img), fused.reference_col2im(np, gcols, g), rtol=1e-5)
        y = gpu(np.full((2, 3, g.oh, g.ow), np.nan, np.float32))
        idx = gpu(np.full(y.shape, -1, np.int32))
        args = (gpu(x), *g.ints(), idx, y)
        be._kernel("conv", "max_pool_forward_f32")((blocks,), (threads,), args)
        np.testing.assert_array_equal(host(y), fused.reference_max_pool(np, x, g)[0])
        # to_rows: blocks stride over 5 channels, threads over a channel's 2 * 40 values
        gy = rng.standard_normal((2, 5, 40)).astype(np.float32)
        rows, gb = gpu(np.full((5, 80), np.nan, np.float32)), gpu(np.full(5, np.nan, np.float32))
        sizes = (np.int64(2), np.int64(5), np.int64(40), np.int32(1))
        be._kernel("conv", "conv_to_rows_f32")((blocks,), (threads,), (gpu(gy), *sizes, rows, gb))
        rrows, rgb = fused.reference_to_rows(np, gy.astype(np.float64), True)
        np.testing.assert_array_equal(host(rows), rrows)
        np.testing.assert_allclose(host(gb), rgb, rtol=1e-5, atol=1e-5)


# ---- GPU: the ops through the kernels -----------------------------------------------------------


def run_cnn_piece(device: str, dtype, x0, w0, b0, v0):
    x, w, b, v = (
        gnn.tensor(a.astype(dtype), device=device, requires_grad=True) for a in (x0, w0, b0, v0)
    )
    h = F.conv2d(x, w, b, stride=1, padding=1, dilation=1)
    y = F.max_pool2d(F.relu(h), 2)
    y2 = F.conv2d(y, v, None, stride=2, padding=1, dilation=2)
    (y2 * y2).sum().backward()
    return [t.numpy().astype(np.float64) for t in (y2, x.grad, w.grad, b.grad, v.grad)]


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA device")
def test_cuda_matches_cpu_conv_and_max_pool_with_their_gradients():
    import cupy

    x0 = rng.standard_normal((2, 3, 6, 6))
    w0 = rng.standard_normal((4, 3, 3, 3)) * 0.5
    b0 = rng.standard_normal(4)
    v0 = rng.standard_normal((5, 4, 3, 3)) * 0.5
    expect = run_cnn_piece("cpu", np.float64, x0, w0, b0, v0)
    with cupy.counting() as counts:
        got = run_cnn_piece("cuda", np.float32, x0, w0, b0, v0)
    names = counts.by_name()
    assert names.get("conv_im2col_f32") == 2 and names.get("conv_col2im_f32") == 2
    assert names.get("max_pool_forward_f32") == 1 and names.get("max_pool_backward_f32") == 1
    for a, e in zip(got, expect):
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-4)


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA device")
def test_float64_on_the_gpu_declines_the_kernels_and_passes_gradcheck():
    import cupy

    x = gnn.tensor(rng.standard_normal((1, 2, 5, 5)), device="cuda", requires_grad=True)
    w = gnn.tensor(rng.standard_normal((3, 2, 3, 3)), device="cuda", requires_grad=True)
    with cupy.counting() as counts:
        assert gradcheck(lambda x, w: F.max_pool2d(F.conv2d(x, w, padding=1), 2, 1), [x, w])
    assert not any(k.startswith(("conv_", "max_pool_")) for k in counts.by_name())


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA device")
def test_cuda_matches_cpu_grouped_strided_conv_float16():
    import cupy

    x0 = rng.standard_normal((2, 4, 7, 6))
    w0 = rng.standard_normal((6, 2, 2, 3)) * 0.5
    b0 = rng.standard_normal(6)
    out = []
    for device, dtype in (("cpu", np.float64), ("cuda", np.float16)):
        x, w, b = (
            gnn.tensor(a.astype(dtype), device=device, requires_grad=True) for a in (x0, w0, b0)
        )
        with cupy.counting() as counts:
            y = F.conv2d(x, w, b, stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2)
            (y * y).sum().backward()
        assert (device == "cuda") == (counts.by_name().get("conv_col2im_f16") == 1)
        out.append([t.numpy().astype(np.float64) for t in (y, x.grad, w.grad, b.grad)])
    for got, expect in zip(out[1], out[0]):
        np.testing.assert_allclose(got, expect, rtol=2e-2, atol=5e-2)


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA device")
@pytest.mark.parametrize(
    "stride, padding, output_padding, dilation, groups",
    [(1, 0, 0, 1, 1), (2, 1, 1, 1, 2), (2, 0, 0, 2, 1), (1, 1, 0, 2, 2)],
)
def test_cuda_matches_cpu_conv_transpose(stride, padding, output_padding, dilation, groups):
    import cupy

    x0 = rng.standard_normal((2, 4, 4, 5))
    w0 = rng.standard_normal((4, 3, 3, 2)) * 0.5
    b0 = rng.standard_normal(3 * groups)
    out = []
    for device, dtype in (("cpu", np.float64), ("cuda", np.float32)):
        x, w, b = (
            gnn.tensor(a.astype(dtype), device=device, requires_grad=True) for a in (x0, w0, b0)
        )
        with cupy.counting() as counts:
            y = F.conv_transpose2d(x, w, b, stride, padding, output_padding, groups, dilation)
            (y * y).sum().backward()
        names = counts.by_name()
        launched = [names.get(k) for k in ("conv_col2im_f32", "conv_im2col_f32")]
        assert launched == ([1, 1] if device == "cuda" else [None, None])
        out.append([t.numpy().astype(np.float64) for t in (y, x.grad, w.grad, b.grad)])
    for got, expect in zip(out[1], out[0]):
        np.testing.assert_allclose(got, expect, rtol=1e-4, atol=1e-4)
