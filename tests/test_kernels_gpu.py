"""gnn's CUDA kernels against their references (kernels/<op>.cu vs gnn/backend/fused/<op>.py).

The reference runs in float64 on the same fresh random data; kernel outputs are poisoned with NaN
before each launch (cupy.empty is patched), so an element the kernel fails to write shows up.
GPU tests carry the `gpu` marker and skip themselves without CuPy and a CUDA device; the tests of
kernel_dir() and of the launch shapes run on the CPU too.
"""

from __future__ import annotations

import itertools
import os
import re

import numpy as np
import pytest

from gnn.backend import NumpyBackend, cuda_available, kernels
from gnn.backend import cuda as cuda_backend
from gnn.backend.fused import layer_norm as fused_ln
from gnn.backend.fused import sigmoid as fused_sigmoid
from gnn.backend.fused import softmax_cross_entropy as fused_ce

ref = NumpyBackend()  # the fused ops on it run their references
rng = np.random.default_rng(7)

GPU_MARKS = [
    pytest.mark.gpu,
    pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA device"),
]


def needs_gpu(test):
    """Mark a test `gpu` and skip it without CuPy and a CUDA device."""
    for mark in GPU_MARKS:
        test = mark(test)
    return test


def sigmoid(be, x):
    return fused_sigmoid.forward(be, x)


def sigmoid_backward(be, y, gy):
    return fused_sigmoid.backward(be, y, gy)


def sce(be, z, t, w=None, ignore_index=-100, reduction="mean", eps=0.0):
    """Softmax cross-entropy on `be` (the kernels on a GPU, the reference on `ref`)."""
    return fused_ce.forward(be, z, t, fused_ce.Spec(w, ignore_index, reduction, eps))


def sce_backward(be, z, t, saved, gloss, w=None, ignore_index=-100, reduction="mean", eps=0.0):
    spec = fused_ce.Spec(w, ignore_index, reduction, eps)
    return fused_ce.backward(be, z, t, saved, gloss, spec)


DTYPES = [np.float32, np.float16]
try:  # bfloat16 kernels (kernels/*_bf16.cu): reachable on the fake CuPy (ml_dtypes arrays)
    import ml_dtypes

    BF16 = [ml_dtypes.bfloat16]
except ImportError:
    BF16 = []
# the code-path tests also run the bfloat16 kernels (their own modules, same templates)
CODE_PATH_DTYPES = DTYPES + BF16
# GNN_FAKE_CUDA=emulate runs the kernels on CPU threads (tests/cuda_cpu): a few sizes shrink there
# where the size itself is not what a test checks.
EMULATED = os.environ.get("GNN_FAKE_CUDA") == "emulate"


# ---- CPU: sources and launch shapes ------------------------------------------------------------


def test_kernel_dir_holds_every_kernel_the_backend_launches():
    folder = kernels.kernel_dir()
    expected = {
        "sigmoid": ["sigmoid_forward", "sigmoid_backward"],
        "softmax_cross_entropy": [
            "softmax_ce_forward",
            "softmax_ce_reduce",
            "softmax_ce_backward",
        ],
        "layer_norm": ["layer_norm_forward", "layer_norm_backward_x", "layer_norm_backward_wb"],
    }
    for module, stems in expected.items():
        source = (folder / f"{module}.cu").read_text()
        defined = set(
            re.findall(r'extern "C" __global__ void __launch_bounds__\([\d, ]+\)\s*(\w+)\(', source)
        )
        for stem, suffix in itertools.product(stems, kernels.KERNEL_DTYPES.values()):
            assert f"{stem}_{suffix}" in defined, f"{module}.cu lacks {stem}_{suffix}"


def test_kernel_source_pastes_the_shared_header(tmp_path, monkeypatch):
    for module in ("sigmoid", "softmax_cross_entropy", "layer_norm"):
        source = kernels.kernel_source(module)
        assert '#include "' not in source  # every local include was pasted
        assert "struct Pack" in source and "GNN_KERNELS_COMMON_CUH" in source
    (tmp_path / "broken.cu").write_text('#include "missing.cuh"\n')
    monkeypatch.setattr(kernels, "kernel_dir", lambda: tmp_path)
    with pytest.raises(FileNotFoundError, match="missing.cuh"):
        kernels.kernel_source("broken")


def test_elementwise_launch_shapes():
    assert kernels.elementwise_launch(1, 4, 132) == (1, 256)
    assert kernels.elementwise_launch(1024, 4, 132) == (1, 256)  # 256 packs of 4
    assert kernels.elementwise_launch(1025, 4, 132) == (2, 256)
    assert kernels.elementwise_launch(2048, 2, 132) == (1, 256)  # 256 packs of 8 halves
    assert kernels.elementwise_launch(10**8, 4, 132) == (132 * 8, 256)  # capped: grid-stride


def test_row_launch_shapes():
    assert kernels.row_threads(1, 4) == 32
    assert kernels.row_threads(1000, 4) == 256  # 250 packs of 4
    assert kernels.row_threads(50257, 4) == 1024
    assert kernels.row_threads(50257, 2) == 1024
    for c in [1, 7, 31, 33, 129, 4097, 10**6]:
        for itemsize in (2, 4):
            threads = kernels.row_threads(c, itemsize)
            assert threads % 32 == 0 and 32 <= threads <= 1024
    assert kernels.reduce_threads(1) == 32
    assert kernels.reduce_threads(8192) == 1024
    assert kernels.row_blocks(5) == 5


# ---- GPU fixtures and helpers ------------------------------------------------------------------


@pytest.fixture
def be(nan_filled_cuda, monkeypatch):
    """The CUDA backend, cupy.empty NaN-filled (tests/conftest.py); the error flag is clear."""
    monkeypatch.delenv("GNN_DEBUG_SYNC", raising=False)
    backend = nan_filled_cuda
    try:
        backend.check_errors()
    except IndexError:
        pass  # left by an earlier test
    return backend


def gpu(a):
    import cupy

    return cupy.asarray(a)


def host(a):
    import cupy

    return cupy.asnumpy(a)


def assert_close(actual, expected, dtype, rtol=None, atol=None):
    """Kernel output (any device) vs float64 reference: tolerance by dtype, atol scaled by size."""
    actual = host(actual).astype(np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape
    scale = max(1.0, float(np.nanmax(np.abs(expected)))) if expected.size else 1.0
    if rtol is None:
        rtol = 2e-5 if dtype == np.float32 else 4e-3
    if atol is None:
        atol = (2e-6 if dtype == np.float32 else 2e-3) * scale
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


def rounded(shape, dtype, scale=1.0):
    """Fresh random data in dtype, and the same values in float64 for the reference."""
    x = (rng.standard_normal(shape) * scale).astype(dtype)
    return x, x.astype(np.float64)


# ---- sigmoid -----------------------------------------------------------------------------------

SIGMOID_SHAPES = [(0,), (3, 0), (), (1,), (7,), (1001,), (37, 53), (2**20 + 3,)]
# 0.5 tanh(x/2) + 0.5 has absolute (not relative) error ~ float32 epsilon near y = 0
SIGMOID_TOL = {np.float32: dict(rtol=1e-6, atol=5e-7), np.float16: dict(rtol=1e-3, atol=1e-3)}
SIGMOID_TOL.update({d: dict(rtol=4e-3, atol=4e-3) for d in BF16})  # half a step of 2**-7 near 1


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SIGMOID_SHAPES)
class TestSigmoid:
    pytestmark = GPU_MARKS

    def test_forward(self, be, shape, dtype):
        x, x64 = rounded(shape, dtype, scale=4.0)
        y = sigmoid(be, gpu(x))
        assert y.dtype == dtype and y.shape == shape
        expected = sigmoid(ref, x64.reshape(-1)).reshape(shape)  # (the reference needs ndim >= 1)
        assert_close(y, expected, dtype, **SIGMOID_TOL[dtype])

    def test_backward(self, be, shape, dtype):
        y = sigmoid(ref, rng.standard_normal(shape).reshape(-1) * 3).reshape(shape).astype(dtype)
        gy, gy64 = rounded(shape, dtype)
        gx = sigmoid_backward(be, gpu(y), gpu(gy))
        assert gx.dtype == dtype and gx.shape == shape
        assert_close(gx, sigmoid_backward(ref, y.astype(np.float64), gy64), dtype, rtol=1e-5)


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_non_contiguous_and_misaligned_inputs(be, dtype):
    x, x64 = rounded((64, 130), dtype, scale=4.0)
    y = sigmoid(ref, x64).astype(dtype)  # a valid sigmoid output for the backward
    gy, gy64 = rounded((64, 130), dtype)
    views = {
        "strided": (lambda a: a[:, ::3]),
        "transposed": (lambda a: a.T),
        "offset by one element (not 16-byte aligned)": (lambda a: a.reshape(-1)[1:4000]),
    }
    for name, view in views.items():
        out = sigmoid(be, view(gpu(x)))
        assert out.shape == view(x).shape, name
        assert_close(out, sigmoid(ref, view(x64)), dtype, **SIGMOID_TOL[dtype])
        gx = sigmoid_backward(be, view(gpu(y)), view(gpu(gy)))
        expected = sigmoid_backward(ref, view(y).astype(np.float64), view(gy64))
        assert_close(gx, expected, dtype, rtol=1e-5)


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_extremes_are_exact(be, dtype):
    big = 6e4 if dtype == np.float16 else 1e4
    x = np.array([-big, -100.0, 0.0, 100.0, big], dtype=dtype)
    y = host(sigmoid(be, gpu(x)))
    assert y[0] == 0 and y[2] == 0.5 and y[-1] == 1 and np.all(np.isfinite(y))
    gx = host(sigmoid_backward(be, gpu(y), gpu(np.ones_like(y))))
    assert gx[0] == 0 and gx[2] == 0.25 and gx[-1] == 0


@needs_gpu
def test_sigmoid_float64_uses_the_reference(be):
    x, x64 = rounded((33,), np.float64)
    np.testing.assert_allclose(host(sigmoid(be, gpu(x))), sigmoid(ref, x64), rtol=1e-14)


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_kernels_accept_any_grid(be, dtype):
    # The grid-stride loops must cover every element with a grid smaller than the work.
    suffix = kernels.KERNEL_DTYPES[np.dtype(dtype)]
    x, x64 = rounded((10_007,), dtype, scale=4.0)
    y = gpu(np.full_like(x, np.nan))
    fn = be._kernel("sigmoid", f"sigmoid_forward_{suffix}")
    fn((1,), (64,), (gpu(x), y, np.int64(x.size)))
    assert_close(y, sigmoid(ref, x64), dtype, **SIGMOID_TOL[dtype])


# ---- softmax cross-entropy ---------------------------------------------------------------------


def run_both(be, z, t, w=None, ignore_index=-100, reduction="mean", eps=0.0, gloss=None):
    """Kernel and float64 reference, forward and backward, on the same data; returns both."""
    dtype = z.dtype.type
    z64 = host(z).astype(np.float64)
    t_host = host(t)
    w64 = None if w is None else host(w).astype(np.float64)
    n = z.shape[0]
    if gloss is None:
        gloss = rng.standard_normal(n) if reduction == "none" else np.array(rng.standard_normal())
    gloss = gloss.astype(dtype)
    loss, saved = sce(be, z, t, w, ignore_index, reduction, eps)
    g = sce_backward(be, z, t, saved, gpu(gloss), w, ignore_index, reduction, eps)
    with np.errstate(divide="ignore", invalid="ignore"):
        rloss, rsaved = sce(ref, z64, t_host, w64, ignore_index, reduction, eps)
        rg = sce_backward(
            ref, z64, t_host, rsaved, gloss.astype(np.float64), w64, ignore_index, reduction, eps
        )
    assert loss.dtype == dtype and g.dtype == dtype
    assert loss.shape == rloss.shape and g.shape == z.shape
    assert saved.lse.dtype == np.float32 and saved.lse.shape == (n,)
    assert (saved.denom is None) == (rsaved.denom is None)
    return (loss, saved, g), (rloss, rsaved, rg)


def check_against_reference(be, z, t, w=None, ignore_index=-100, reduction="mean", eps=0.0):
    dtype = z.dtype.type
    (loss, saved, g), (rloss, rsaved, rg) = run_both(be, z, t, w, ignore_index, reduction, eps)
    assert_close(loss, rloss, dtype)
    assert_close(saved.lse, rsaved.lse, np.float32)
    if rsaved.denom is not None:
        assert_close(saved.denom, rsaved.denom, np.float32)
    assert_close(g, rg, dtype)


def labels(n, c, ignored=False):
    t = rng.integers(0, c, n)
    if ignored:
        t[rng.random(n) < 0.3] = -100
    return t


SCE_SHAPES = [(1, 1), (5, 1), (1, 7), (3, 10), (17, 33), (6, 1027), (2, 5000)]
SCE_OPTIONS = list(itertools.product(["none", "sum", "mean"], [0.0, 0.1], [False, True]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SCE_SHAPES)
@pytest.mark.parametrize("reduction, eps, weighted", SCE_OPTIONS)
class TestSoftmaxCrossEntropy:
    pytestmark = GPU_MARKS

    def test_matches_reference(self, be, shape, dtype, reduction, eps, weighted):
        n, c = shape
        z, _ = rounded(shape, dtype, scale=3.0)
        w = gpu(rng.random(c).astype(np.float32) + 0.5) if weighted else None
        t = labels(n, c, ignored=n > 2)
        check_against_reference(be, gpu(z), gpu(t), w, reduction=reduction, eps=eps)


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction, eps, weighted", [("mean", 0.0, False), ("sum", 0.1, True)])
def test_softmax_cross_entropy_vocabulary_50257(be, dtype, reduction, eps, weighted):
    # rows of 50,257 elements start off 16-byte boundaries: scalar head, packs, scalar tail
    n, c = 6, 50257
    z, _ = rounded((n, c), dtype, scale=3.0)
    w = gpu(rng.random(c).astype(np.float32) + 0.5) if weighted else None
    t = np.array([0, c - 1, 12345, -100, 50000, 7])
    check_against_reference(be, gpu(z), gpu(t), w, reduction=reduction, eps=eps)


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_large_batch(be, dtype):
    # more rows than one reduce block has threads (1024): its loop goes round
    n, c = (1031 if EMULATED else 4099), 10
    z, _ = rounded((n, c), dtype, scale=3.0)
    for reduction in ["none", "mean"]:
        check_against_reference(be, gpu(z), gpu(labels(n, c, True)), reduction=reduction)


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_non_contiguous_inputs(be, dtype):
    big, _ = rounded((9, 2 * 301 + 1), dtype, scale=3.0)
    t = gpu(labels(9, 301, True))
    w = gpu((rng.random(301) + 0.5).astype(np.float32))
    check_against_reference(be, gpu(big)[:, 1:302], t, w, reduction="mean", eps=0.1)
    check_against_reference(be, gpu(big)[:, ::2][:, :301], t, reduction="sum")
    zt, _ = rounded((301, 9), dtype)
    check_against_reference(be, gpu(zt).T, t, reduction="none")
    flat, _ = rounded((9 * 301 + 1,), dtype)
    check_against_reference(be, gpu(flat)[1:].reshape(9, 301), t, reduction="mean")  # misaligned
    check_against_reference(
        be, gpu(big)[:, 1:302], gpu(host(t)[::-1].copy())[::-1], reduction="sum"
    )


@needs_gpu
def test_softmax_cross_entropy_ignore_index_variants(be):
    z, _ = rounded((8, 5), np.float32)
    t = np.array([0, 1, 2, 3, 4, 0, 7, 7])
    check_against_reference(be, gpu(z[:6]), gpu(t[:6]), ignore_index=0, reduction="mean")
    check_against_reference(be, gpu(z), gpu(t), ignore_index=7, reduction="mean", eps=0.2)
    check_against_reference(be, gpu(z), gpu(t.astype(np.int32)), ignore_index=7, reduction="sum")


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_all_ignored(be, dtype):
    z = gpu(rounded((4, 6), dtype)[0])
    t = gpu(np.full(4, -100))
    loss, saved = sce(be, z, t, reduction="mean")
    assert np.isnan(host(loss)) and host(saved.denom) == 0
    g = sce_backward(be, z, t, saved, gpu(np.array(1.0, dtype)))
    np.testing.assert_array_equal(host(g), 0)
    loss, saved = sce(be, z, t, reduction="sum")
    assert host(loss) == 0
    loss, saved = sce(be, z, t, reduction="none")
    np.testing.assert_array_equal(host(loss), 0)


@needs_gpu
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_softmax_cross_entropy_empty_batch(be, reduction):
    z = gpu(np.zeros((0, 5), np.float32))
    t = gpu(np.zeros((0,), np.int64))
    with np.errstate(invalid="ignore"):
        loss, saved = sce(be, z, t, reduction=reduction)
        rloss, _ = sce(ref, np.zeros((0, 5)), np.zeros((0,), np.int64), None, -100, reduction)
    np.testing.assert_array_equal(host(loss), rloss)  # NaN for mean, 0 for sum, () for none
    with np.errstate(invalid="ignore", divide="ignore"):
        gloss = gpu(np.ones(loss.shape, np.float32))
        g = sce_backward(be, z, t, saved, gloss, reduction=reduction)
    assert g.shape == (0, 5)


@needs_gpu
def test_softmax_cross_entropy_float64_uses_the_reference(be):
    z, z64 = rounded((4, 9), np.float64)
    t = labels(4, 9)
    loss, saved = sce(be, gpu(z), gpu(t))
    rloss, _ = sce(ref, z64, t)
    np.testing.assert_allclose(host(loss), rloss, rtol=1e-14)


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_kernels_accept_any_grid(be, dtype):
    # Row kernels stride over rows: a grid of 3 blocks must still do all 10 rows.
    suffix = kernels.KERNEL_DTYPES[np.dtype(dtype)]
    n, c = 10, 77
    z, z64 = rounded((n, c), dtype, scale=3.0)
    t = labels(n, c, True)
    lse = gpu(np.full(n, np.nan, np.float32))
    row_loss = gpu(np.full(n, np.nan, np.float32))
    dummy = gpu(np.zeros(1, np.float32))
    errors = gpu(np.zeros(cuda_backend.ERROR_SLOTS, np.int64))
    fwd = be._kernel("softmax_cross_entropy", f"softmax_ce_forward_{suffix}")
    args = (
        gpu(z),
        gpu(t),
        dummy,
        dummy,
        np.int32(0),
        np.int64(n),
        np.int64(c),
        np.int64(-100),
        np.float32(0.0),
        lse,
        row_loss,
        errors,
    )
    fwd((3,), (64,), args)
    rloss, rsaved = sce(ref, z64, t, reduction="none")
    rlse = rsaved.lse
    assert_close(row_loss, rloss, np.float32, rtol=1e-4, atol=1e-4)
    assert_close(lse, rlse, np.float32)
    g = gpu(np.full((n, c), np.nan, dtype))
    bwd = be._kernel("softmax_cross_entropy", f"softmax_ce_backward_{suffix}")
    ones = gpu(np.ones(1, np.float32))
    args = (
        gpu(z),
        gpu(t),
        dummy,
        dummy,
        np.int32(0),
        lse,
        ones,
        np.int64(0),
        dummy,
        np.int32(0),
        np.int64(n),
        np.int64(c),
        np.int64(-100),
        np.float32(0.0),
        g,
        errors,
    )
    bwd((3,), (64,), args)
    rg = sce_backward(ref, z64, t, fused_ce.Saved(rlse), np.float64(1.0), reduction="sum")
    assert_close(g, rg, dtype)
    assert host(errors)[0] == 0


# ---- bad labels: flagged on the device, raised by check_errors ---------------------------------


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_out_of_range_label_is_flagged_and_raised_by_check_errors(be, dtype):
    z = gpu(rounded((4, 10), dtype)[0])
    t = gpu(np.array([1, 10, -100, 3]))
    loss, saved = sce(be, z, t, reduction="none")  # queued: no raise, no sync
    with pytest.raises(IndexError, match=r"target 10 is out of bounds for 10 classes"):
        be.check_errors()
    be.check_errors()  # the flag was cleared
    rows = host(loss)
    assert np.isnan(rows[1]) and np.all(np.isfinite(rows[[0, 2, 3]]))
    g = host(sce_backward(be, z, t, saved, gpu(np.ones(4, dtype)), reduction="none"))
    assert np.all(np.isnan(g[1])) and np.all(np.isfinite(g[[0, 2, 3]]))
    # the forward's count was raised above: the backward's own count is reported, not 0
    with pytest.raises(IndexError, match="target 10.*; 1 bad label"):
        be.check_errors()


@needs_gpu
def test_out_of_range_label_is_raised_lazily_when_read_to_host(be):
    z = gpu(rounded((3, 4), np.float32)[0])
    loss, _ = sce(be, z, gpu(np.array([0, -1, 2])), reduction="mean")
    with pytest.raises(IndexError, match=r"target -1 is out of bounds for 4 classes.*1 bad label"):
        be.to_numpy(loss)
    assert np.isnan(be.to_numpy(loss))  # reported once; the mean is NaN


@needs_gpu
def test_out_of_range_label_raises_at_launch_with_debug_sync(be, monkeypatch):
    monkeypatch.setenv("GNN_DEBUG_SYNC", "1")
    z = gpu(rounded((3, 4), np.float32)[0])
    with pytest.raises(IndexError, match="target 4 is out of bounds for 4 classes"):
        sce(be, z, gpu(np.array([4, 4, 0])))
    sce(be, z, gpu(np.array([3, 2, 0])))  # fine again


# ---- every code path at small sizes (the sanitizer lanes of ci/emulate.sh run these) -------------
# Softmax-CE rows: a scalar head up to the first 16-byte boundary, 16-byte packs, a scalar tail.
# (5, 37) float32 rows start 0, 4, 8, 12, 0 bytes past a boundary (float16: 0, 10, 4, 14, 8), so
# every head length occurs; a view one element in makes the backward's rows misaligned with its
# output (no packs at all there); 50257 classes is GPT-2's vocabulary.


def extreme_logits(dtype):
    big = 6e4 if dtype == np.float16 else 1e4
    z = rng.standard_normal((4, 19)) * 3
    z[0, :2] = big, -big
    z[1, :] = -big
    z[1, 5] = big
    z[2, 3:9] = -np.inf  # masked classes: exp(-inf) adds nothing, and must not give NaN
    z[3, 7] = big  # the label's logit dominates: loss 0, gradient 0 at the label
    return z.astype(dtype), np.array([0, 5, 2, 7])


CODE_PATHS = {
    # name: (logits, labels, weighted, reduction, label smoothing)
    "heads packs tails": (
        lambda d: rounded((5, 37), d, 3.0)[0],
        [0, 36, -100, 5, 17],
        False,
        "mean",
        0.0,
    ),
    "one row": (lambda d: rounded((1, 300), d, 3.0)[0], [299], True, "sum", 0.1),
    "one class": (lambda d: rounded((5, 1), d, 3.0)[0], [0, 0, -100, 0, 0], False, "none", 0.0),
    "one class smoothed": (lambda d: rounded((3, 1), d)[0], [0, 0, 0], True, "mean", 0.2),
    "vocabulary 50257": (lambda d: rounded((2, 50257), d, 3.0)[0], [50256, 31], True, "mean", 0.1),
    "extreme logits": (lambda d: extreme_logits(d)[0], [0, 5, 2, 7], False, "sum", 0.0),
}


@needs_gpu
@pytest.mark.parametrize("dtype", CODE_PATH_DTYPES)
@pytest.mark.parametrize("case", sorted(CODE_PATHS))
def test_code_path_softmax_cross_entropy(be, case, dtype):
    make, t, weighted, reduction, eps = CODE_PATHS[case]
    z = make(dtype)
    c = z.shape[1]
    w = gpu(rng.random(c).astype(np.float32) + 0.5) if weighted else None
    check_against_reference(be, gpu(z), gpu(np.array(t)), w, reduction=reduction, eps=eps)


@needs_gpu
@pytest.mark.parametrize("dtype", CODE_PATH_DTYPES)
def test_code_path_softmax_cross_entropy_misaligned_rows(be, dtype):
    flat, _ = rounded((3 * 41 + 1,), dtype, scale=3.0)
    z = gpu(flat)[1:].reshape(3, 41)  # starts one element past a 16-byte boundary
    t = gpu(np.array([40, 0, 13]))
    check_against_reference(be, z, t, reduction="none")
    check_against_reference(be, z, t, reduction="mean", eps=0.1)


@needs_gpu
@pytest.mark.parametrize("dtype", CODE_PATH_DTYPES)
def test_code_path_sigmoid(be, dtype):
    # tail only, one pack and a tail, many packs through the grid-stride loop, a misaligned view
    for n in (1, 3, 7, 8, 9, 4099):
        x, x64 = rounded((n,), dtype, scale=4.0)
        assert_close(sigmoid(be, gpu(x)), sigmoid(ref, x64), dtype, **SIGMOID_TOL[dtype])
        gy, gy64 = rounded((n,), dtype)
        y = sigmoid(ref, x64).astype(dtype)
        expected = sigmoid_backward(ref, y.astype(np.float64), gy64)
        assert_close(sigmoid_backward(be, gpu(y), gpu(gy)), expected, dtype, rtol=1e-5)
    x, x64 = rounded((130,), dtype, scale=4.0)
    assert_close(sigmoid(be, gpu(x)[1:]), sigmoid(ref, x64[1:]), dtype, **SIGMOID_TOL[dtype])


@needs_gpu
@pytest.mark.parametrize("mean", [0, 1])
def test_code_path_softmax_cross_entropy_reduce_strides_past_one_block(be, mean):
    # one 1024-thread block sums 2500 rows: ignored rows and bad labels count in the loss only
    n, c = 2500, 7
    row_loss = rng.random(n).astype(np.float32)
    t = rng.integers(0, c, n)
    t[::5] = -100
    t[3] = c  # a bad label: its row loss is summed, its weight is not
    w = (rng.random(c) + 0.5).astype(np.float32)
    loss = gpu(np.full((), np.nan, np.float32))
    denom = gpu(np.full((), np.nan, np.float32))
    args = (
        gpu(row_loss),
        gpu(t),
        gpu(w),
        np.int32(1),
        np.int64(n),
        np.int64(c),
        np.int64(-100),
        np.int32(mean),
        loss,
        denom,
    )
    be._kernel("softmax_cross_entropy", "softmax_ce_reduce_f32")((1,), (1024,), args)
    counted = (t != -100) & (t < c)
    expected_denom = w[t[counted]].astype(np.float64).sum()
    total = row_loss.astype(np.float64).sum()
    assert_close(denom, expected_denom, np.float32)
    assert_close(loss, total / expected_denom if mean else total, np.float32)


@needs_gpu
def test_code_path_float16_stores_round_to_nearest_even(be):
    # The reduce kernel stores float(total) as a half: totals chosen at and near half ties, in the
    # subnormal range, and past the largest half must round exactly as NumPy's float16 does.
    ulp = 2.0**-10
    totals = [
        1 + ulp / 2,  # a tie: to the even 1.0
        1 + 3 * ulp / 2,  # a tie: to the even 1 + 2 ulp
        1 + 3 * ulp / 4,  # nearer 1 + ulp (truncation would give 1)
        -(1 + 3 * ulp / 4),
        1.5 * 2.0**-25,  # subnormal: 2^-24, not 0
        2.0**-25,  # a tie with 0: to 0
        3 * 2.0**-24 / 2,  # a subnormal tie: to 2 * 2^-24
        65519.0,  # the largest half, 65504
        65520.0,  # a tie with the next power of two: infinity
        -1e6,
    ]
    for total in totals:
        loss = gpu(np.full((), np.nan, np.float16))
        denom = gpu(np.full((), np.nan, np.float32))
        args = (
            gpu(np.array([total], np.float32)),
            gpu(np.array([0])),
            be._dummy_f32(),
            np.int32(0),
            np.int64(1),
            np.int64(1),
            np.int64(-100),
            np.int32(0),
            loss,
            denom,
        )
        be._kernel("softmax_cross_entropy", "softmax_ce_reduce_f16")((1,), (32,), args)
        got = host(loss)
        with np.errstate(over="ignore"):  # 65520 and -1e6 overflow to infinity, as they should
            want = np.float32(total).astype(np.float16)
        assert got.tobytes() == want.tobytes(), f"{total!r}: got {got!r}, want {want!r}"


@needs_gpu
@pytest.mark.skipif(not BF16, reason="needs ml_dtypes")
def test_code_path_bfloat16_stores_round_to_nearest_even(be):
    # The bf16 reduce kernel stores float(total) as a bfloat16 (7 stored mantissa bits): ties,
    # near-ties and overflow must round exactly as ml_dtypes does (round to nearest even).
    bf16 = np.dtype(BF16[0])
    ulp = 2.0**-7
    totals = [
        1 + ulp / 2,  # a tie: to the even 1.0
        1 + 3 * ulp / 2,  # a tie: to the even 1 + 2 ulp
        1 + 3 * ulp / 4,  # nearer 1 + ulp (truncation would give 1)
        -(1 + 3 * ulp / 4),
        3.0e38,
        3.4e38,  # rounds past the largest bfloat16: infinity
        1e-40,  # a float32 subnormal
    ]
    for total in totals:
        loss = gpu(np.full((), np.nan, np.float32).astype(bf16))
        denom = gpu(np.full((), np.nan, np.float32))
        args = (
            gpu(np.array([total], np.float32)),
            gpu(np.array([0])),
            be._dummy_f32(),
            np.int32(0),
            np.int64(1),
            np.int64(1),
            np.int64(-100),
            np.int32(0),
            loss,
            denom,
        )
        be._kernel("softmax_cross_entropy_bf16", "softmax_ce_reduce_bf16")((1,), (32,), args)
        got = host(loss)
        want = np.float32(total).astype(bf16)
        assert got.tobytes() == want.tobytes(), f"{total!r}: got {got!r}, want {want!r}"
    # and the packed stores (8 per 16 bytes) of the elementwise kernel: sigmoid outputs whose
    # float32 value lies between two bfloat16s round as ml_dtypes rounds it, all but rare
    # last-bit differences of tanhf (truncation would miss about half of them)
    x = (rng.standard_normal(4099) * 4).astype(bf16)
    got = host(sigmoid(be, gpu(x))).view(np.uint16)
    want = sigmoid(ref, x).view(np.uint16)
    assert np.mean(got != want) < 0.01


# ---- layer norm (kernels/layer_norm.cu) --------------------------------------------------------

LN_TOL = {np.float32: dict(rtol=1e-4, atol=1e-5), np.float16: dict(rtol=4e-3, atol=4e-3)}
LN_TOL.update({d: dict(rtol=2e-2, atol=2e-2) for d in BF16})  # the final rounding: 2**-8


def misaligned(a):
    """The same values in a buffer one element past the start: rows off every 16-byte boundary."""
    flat = np.empty(a.size + 1, a.dtype)
    flat[1:] = a.reshape(-1)
    return gpu(flat)[1:].reshape(a.shape)


def check_layer_norm(
    be, n, d, dtype, weight=True, bias=True, scale=1.0, shift=0.0, eps=1e-5, place=gpu, tol=None
):
    """Forward (y, mean, rstd) and backward (gx, gweight, gbias) against the float64 reference."""
    tol = tol or LN_TOL[dtype]
    x = (rng.standard_normal((n, d)) * scale + shift).astype(dtype)
    gy = rng.standard_normal((n, d)).astype(dtype)
    w = (rng.standard_normal(d) + 1).astype(dtype) if weight else None
    b = rng.standard_normal(d).astype(dtype) if bias else None
    f64 = [None if a is None else a.astype(np.float64) for a in (x, gy, w, b)]
    ry, rsaved = fused_ln.forward(ref, f64[0], f64[2], f64[3], eps)
    y, saved = fused_ln.forward(
        be, place(x), *(None if a is None else place(a) for a in (w, b)), eps
    )
    assert y.dtype == dtype and y.shape == (n, d) and saved.xhat is None  # the kernel ran
    assert_close(y, ry, dtype, **tol)
    assert_close(saved.mean, rsaved.mean, np.float32, rtol=1e-6, atol=1e-6 * (abs(shift) + scale))
    assert_close(saved.rstd, rsaved.rstd, np.float32, rtol=1e-4 if dtype == np.float32 else 1e-3)
    needs = fused_ln.Needs(True, weight, bias)
    expect = fused_ln.backward(ref, f64[0], f64[1], rsaved, f64[2], needs)
    wp = None if w is None else place(w)
    got = fused_ln.backward(be, place(x), place(gy), saved, wp, needs)
    for g, e, what in zip(got, expect, ("gx", "gweight", "gbias")):
        assert (g is None) == (e is None), what
        if e is not None:
            assert g.dtype == dtype, what
            assert_close(g, e, dtype, **tol)


LN_SHAPES = [(1, 7), (6, 1), (3, 13), (4, 768), (2, 4097), (70, 33), (260, 3)]  # 260: 32 row lanes


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", LN_SHAPES)
@pytest.mark.parametrize("affine", ["weight+bias", "none", "bias", "weight"])
class TestLayerNorm:
    pytestmark = GPU_MARKS

    def test_matches_reference(self, be, shape, dtype, affine):
        check_layer_norm(be, *shape, dtype, weight="weight" in affine, bias="bias" in affine)


@needs_gpu
@pytest.mark.parametrize("dtype", CODE_PATH_DTYPES)
@pytest.mark.parametrize(
    "case",
    [
        "one row",
        "one column",
        "d 13",
        "d 300 several warps",
        "d 45 rows past one block",
        "misaligned",
        "no affine",
    ],
)
def test_code_path_layer_norm(be, case, dtype):
    # small sizes (the sanitizer lanes run these): scalar loops of uneven length, one warp and
    # several, the weight kernel's row lanes looping (n > 32 with 1024 threads), rows off 16 bytes
    sizes = {"one row": (1, 9), "one column": (5, 1), "d 45 rows past one block": (40, 45)}
    n, d = sizes.get(case, (3, 300) if "several warps" in case else (3, 13))
    kw = {"place": misaligned} if case == "misaligned" else {}
    if case == "no affine":
        kw.update(weight=False, bias=False)
    check_layer_norm(be, n, d, dtype, scale=2.0, shift=0.5, **kw)


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm_non_contiguous_and_misaligned_inputs(be, dtype):
    def every_other_row(a):  # a view with a row stride of two rows (or a strided vector)
        return gpu(np.repeat(a, 2, axis=0))[::2]

    for place in (every_other_row, misaligned):
        check_layer_norm(be, 4, 21, dtype, place=place)


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm_extremes(be, dtype):
    # A large mean with a small spread: a one-pass E[x^2] - E[x]^2 in float32 loses every digit
    # of the variance here (1e8 + 1 - 1e8); the corrected two-pass keeps them. Constant rows have
    # variance 0: y = bias exactly, up to the float32 rounding of the mean.
    shift = 1e4 if dtype == np.float32 else 1e3
    check_layer_norm(be, 3, 50, dtype, scale=1.0, shift=shift, tol=dict(rtol=1e-2, atol=2e-2))
    check_layer_norm(be, 2, 37, dtype, scale=0.0, shift=0.1, tol=dict(rtol=1e-3, atol=1e-3))


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm_kernels_accept_any_grid(be, dtype):
    # rows and column tiles are grid-stride loops: 3 blocks do 10 rows, 1 block does 3 tiles
    suffix = kernels.KERNEL_DTYPES[np.dtype(dtype)]
    n, d = 10, 77
    x, x64 = rounded((n, d), dtype, scale=3.0)
    gy, gy64 = rounded((n, d), dtype)
    w, w64 = rounded((d,), dtype)
    b, b64 = rounded((d,), dtype)
    y = gpu(np.full((n, d), np.nan, dtype))
    mean, rstd = (gpu(np.full(n, np.nan, np.float32)) for _ in range(2))
    sizes = (np.int64(n), np.int64(d))
    args = (gpu(x), gpu(w), gpu(b), np.int32(1), np.int32(1), *sizes, np.float32(1e-5), y, mean)
    be._kernel("layer_norm", f"layer_norm_forward_{suffix}")((3,), (64,), (*args, rstd))
    ry, rsaved = fused_ln.forward(ref, x64, w64, b64, 1e-5)
    assert_close(y, ry, dtype, **LN_TOL[dtype])
    gx = gpu(np.full((n, d), np.nan, dtype))
    args = (gpu(x), gpu(gy), gpu(w), np.int32(1), mean, rstd, *sizes, gx)
    be._kernel("layer_norm", f"layer_norm_backward_x_{suffix}")((3,), (64,), args)
    gw, gb = (gpu(np.full(d, np.nan, dtype)) for _ in range(2))
    args = (gpu(x), gpu(gy), mean, rstd, *sizes, np.int32(1), np.int32(1), gw, gb)
    be._kernel("layer_norm", f"layer_norm_backward_wb_{suffix}")((1,), (64,), args)
    expect = fused_ln.backward(ref, x64, gy64, rsaved, w64, fused_ln.Needs(True, True, True))
    for got, e in zip((gx, gw, gb), expect):
        assert_close(got, e, dtype, **LN_TOL[dtype])


@needs_gpu
def test_layer_norm_other_dtypes_use_the_reference(be):
    import cupy

    x = rng.standard_normal((4, 6))
    with cupy.counting() as c:
        y, saved = fused_ln.forward(be, gpu(x), None, None, 1e-5)
    assert saved.xhat is not None and not any(k.startswith("layer_norm") for k in c.by_name())
    np.testing.assert_allclose(host(y), fused_ln.forward(ref, x, None, None, 1e-5)[0])
    w = gpu(np.ones(6, np.float32))  # float16 data with a float32 weight: no kernel for that
    y, saved = fused_ln.forward(be, gpu(x.astype(np.float16)), w, None, 1e-5)
    assert saved.xhat is not None
