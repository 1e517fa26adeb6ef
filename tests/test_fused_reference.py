"""The references of the fused ops (gnn/backend/fused: sigmoid, softmax cross-entropy, layer
norm), on the CPU with NumPy.

Each is compared with the unfused composition written out in plain NumPy, with values worked out by
hand for tiny cases, and (backward) with float64 central differences of its own forward. These
references are what the CUDA kernels are tested against (tests/test_kernels_gpu.py).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from gnn.backend.fused import layer_norm as fused_ln
from gnn.backend.fused import sigmoid as fused_sigmoid
from gnn.backend.fused import softmax_cross_entropy as fused_ce

rng = np.random.default_rng(20240607)

LN2, LN3, LN5, LN8, LN10 = (math.log(v) for v in (2, 3, 5, 8, 10))


# ---- plain-NumPy compositions (independent of the reference code) --------------------------------


def unfused_sigmoid(x):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def unfused_log_softmax(z):
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def unfused_cross_entropy(z, target, weight=None, ignore_index=-100, reduction="mean", eps=0.0):
    """PyTorch's definition: log-softmax, gather the target column, weight, smooth, reduce."""
    n, c = z.shape
    logp = unfused_log_softmax(z)
    w = np.ones(c) if weight is None else weight
    valid = target != ignore_index
    t = np.where(valid, target, 0)
    nll = -logp[np.arange(n), t]
    smooth = -(logp * w[None, :]).sum(axis=1) / c  # eps / C * sum_c w_c * (-log p_c), without eps
    loss = np.where(valid, (1 - eps) * w[t] * nll + eps * smooth, 0.0)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        return loss.sum() / np.where(valid, w[t], 0.0).sum()


def numerical_grad(f, x, gy, h=1e-6):
    """d sum(f(x) * gy) / dx by central differences, float64."""
    x = x.astype(np.float64).copy()
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        plus = np.sum(f(x) * gy)
        x[i] = old - h
        minus = np.sum(f(x) * gy)
        x[i] = old
        g[i] = (plus - minus) / (2 * h)
    return g


def sigmoid(x):
    return fused_sigmoid.reference(np, x)


def sigmoid_backward(y, gy):
    return fused_sigmoid.reference_backward(np, y, gy)


def sce(z, t, w=None, ignore_index=-100, reduction="mean", eps=0.0):
    return fused_ce.reference(np, z, t, fused_ce.Spec(w, ignore_index, reduction, eps))


def sce_grad(z, t, gloss, w=None, ignore_index=-100, reduction="mean", eps=0.0):
    spec = fused_ce.Spec(w, ignore_index, reduction, eps)
    _, saved = fused_ce.reference(np, z, t, spec)
    return fused_ce.reference_backward(np, z, t, saved, gloss, spec)


# ---- sigmoid -------------------------------------------------------------------------------------


def test_sigmoid_matches_unfused_composition():
    x = rng.standard_normal((7, 13)) * 5
    np.testing.assert_allclose(sigmoid(x), unfused_sigmoid(x), rtol=1e-13, atol=1e-15)


def test_sigmoid_by_hand():
    x = np.array([0.0, LN3, -LN3, 2 * LN2])
    # 1 / (1 + e^-x): 1/2, 1/(1 + 1/3) = 3/4, 1/(1 + 3) = 1/4, 1/(1 + 1/4) = 4/5
    np.testing.assert_allclose(sigmoid(x), [0.5, 0.75, 0.25, 0.8], rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_sigmoid_extreme_inputs_are_exact_without_warnings(dtype):
    big = 6e4 if dtype == np.float16 else 1e4
    x = np.array([-big, -100.0, 0.0, 100.0, big], dtype=dtype)
    with np.errstate(all="raise"):  # any overflow / invalid warning fails the test
        y = sigmoid(x)
        gx = sigmoid_backward(y, np.ones_like(y))
    assert y.dtype == dtype
    assert y[0] == 0.0 and y[-1] == 1.0 and y[2] == 0.5
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(gx))
    assert gx[0] == 0.0 and gx[-1] == 0.0 and gx[2] == 0.25


def test_sigmoid_backward_matches_unfused_composition():
    y = unfused_sigmoid(rng.standard_normal((4, 9)))
    gy = rng.standard_normal((4, 9))
    np.testing.assert_allclose(sigmoid_backward(y, gy), gy * y * (1 - y), rtol=1e-14)


def test_sigmoid_backward_by_hand():
    y = np.array([0.5, 0.75, 0.25])
    gy = np.array([2.0, 1.0, -4.0])
    # gy * y * (1 - y): 2 * 1/4, 1 * 3/16, -4 * 3/16
    np.testing.assert_allclose(sigmoid_backward(y, gy), [0.5, 0.1875, -0.75], rtol=1e-15)


def test_sigmoid_backward_is_the_derivative():
    x = rng.standard_normal((3, 5))
    gy = rng.standard_normal((3, 5))
    numeric = numerical_grad(sigmoid, x, gy)
    np.testing.assert_allclose(sigmoid_backward(sigmoid(x), gy), numeric, rtol=1e-6, atol=1e-9)


# ---- softmax cross-entropy: a 2 x 3 case worked out by hand --------------------------------------
# row 0: z = (0, 0, 0)          softmax (1/3, 1/3, 1/3)   lse = ln 3   label 1: -log p = ln 3
# row 1: z = (0, ln 2, ln 5)    softmax (1/8, 2/8, 5/8)   lse = ln 8   label 2: -log p = ln 8/5

Z = np.array([[0.0, 0.0, 0.0], [0.0, LN2, LN5]])
T = np.array([1, 2])
W = np.array([1.0, 2.0, 3.0])


@pytest.mark.parametrize(
    "reduction, expected",
    [
        ("none", [LN3, LN8 - LN5]),  # [1.0986122886681098, 0.4700036292457356]
        ("sum", LN3 + LN8 - LN5),  # 1.5686159179138454
        ("mean", (LN3 + LN8 - LN5) / 2),  # 0.7843079589569227
    ],
)
def test_cross_entropy_by_hand(reduction, expected):
    loss, saved = sce(Z, T, reduction=reduction)
    lse, denom = saved.lse, saved.denom
    np.testing.assert_allclose(loss, expected, rtol=1e-14)
    np.testing.assert_allclose(lse, [LN3, LN8], rtol=1e-14)
    assert (denom is not None) == (reduction == "mean")


@pytest.mark.parametrize(
    "reduction, expected",
    [
        ("none", [2 * LN3, 3 * (LN8 - LN5)]),  # w[1] = 2, w[2] = 3
        ("sum", 2 * LN3 + 3 * (LN8 - LN5)),  # 3.6072354650734264
        ("mean", (2 * LN3 + 3 * (LN8 - LN5)) / 5),  # divided by w[1] + w[2] = 5: 0.7214470930146853
    ],
)
def test_cross_entropy_class_weights_by_hand(reduction, expected):
    loss, _ = sce(Z, T, W, reduction=reduction)
    np.testing.assert_allclose(loss, expected, rtol=1e-14)


def test_cross_entropy_label_smoothing_by_hand():
    # loss = (1 - eps)(lse - z_t) + eps (lse - mean(z)); eps = 0.3
    # row 0: 0.7 ln 3 + 0.3 (ln 3 - 0) = ln 3
    # row 1: 0.7 ln(8/5) + 0.3 (ln 8 - ln(10)/3) = 0.32900254 + 0.39357395 = 0.7225764936765611
    loss, _ = sce(Z, T, reduction="none", eps=0.3)
    np.testing.assert_allclose(loss, [LN3, 0.7 * (LN8 - LN5) + 0.3 * (LN8 - LN10 / 3)], rtol=1e-14)
    np.testing.assert_allclose(loss[1], 0.7225764936765611, rtol=1e-14)


def test_cross_entropy_label_smoothing_with_weights_by_hand():
    # smoothing term: eps/C sum_c w_c (lse - z_c); row 0: 0.1/3 * 6 ln 3 = 0.2 ln 3
    # row 1: 0.1/3 (1 ln 8 + 2 (ln 8 - ln 2) + 3 (ln 8 - ln 5))
    loss, _ = sce(Z, T, W, reduction="none", eps=0.1)
    row0 = 0.9 * 2 * LN3 + 0.2 * LN3
    row1 = 0.9 * 3 * (LN8 - LN5) + 0.1 / 3 * (LN8 + 2 * (LN8 - LN2) + 3 * (LN8 - LN5))
    np.testing.assert_allclose(loss, [row0, row1], rtol=1e-14)


def test_cross_entropy_ignore_index_by_hand():
    t = np.array([1, -100])
    loss, _ = sce(Z, t, reduction="none")
    np.testing.assert_allclose(loss, [LN3, 0.0], rtol=1e-14)
    np.testing.assert_allclose(sce(Z, t, reduction="sum")[0], LN3, rtol=1e-14)
    np.testing.assert_allclose(sce(Z, t, reduction="mean")[0], LN3, rtol=1e-14)  # over 1 row
    t = np.array([1, 7])  # a custom ignore_index that is out of range is fine
    np.testing.assert_allclose(sce(Z, t, ignore_index=7, reduction="mean")[0], LN3, rtol=1e-14)


def test_cross_entropy_all_ignored():
    t = np.array([-100, -100])
    with np.errstate(invalid="ignore"):
        mean, saved = sce(Z, t, reduction="mean")
    assert np.isnan(mean) and saved.denom == 0  # 0 / 0, as in PyTorch
    assert sce(Z, t, reduction="sum")[0] == 0.0
    np.testing.assert_array_equal(sce(Z, t, reduction="none")[0], [0.0, 0.0])
    g = sce_grad(Z, t, np.float64(1.0), reduction="sum")
    np.testing.assert_array_equal(g, np.zeros_like(Z))


def test_cross_entropy_backward_by_hand():
    # mean: (softmax - onehot) / N
    g = sce_grad(Z, T, np.float64(1.0), reduction="mean")
    expected = np.array([[1 / 3, -2 / 3, 1 / 3], [1 / 8, 2 / 8, 5 / 8 - 1]]) / 2
    np.testing.assert_allclose(g, expected, rtol=1e-13, atol=1e-16)
    # weights and an ignored row: row 0 scaled by w[1] / sum(w_t) = 2 / 2, row 1 zero
    g = sce_grad(Z, np.array([1, -100]), np.float64(1.0), W, reduction="mean")
    np.testing.assert_allclose(g, [[1 / 3, -2 / 3, 1 / 3], [0, 0, 0]], rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize("bad", [3, -1, 1000])
def test_cross_entropy_out_of_range_label_raises(bad):
    with pytest.raises(IndexError, match=f"target {bad} is out of bounds for 3 classes"):
        sce(Z, np.array([1, bad]))


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.int16, np.uint8])
@pytest.mark.parametrize("ignore_index", [-100, 0, 2])
def test_cross_entropy_label_check_for_every_integer_dtype(dtype, ignore_index):
    z = rng.standard_normal((40, 3))
    t = rng.integers(0, 3, 40).astype(dtype)
    expected = unfused_cross_entropy(z, t.astype(np.int64), ignore_index=ignore_index)
    np.testing.assert_allclose(sce(z, t, ignore_index=ignore_index)[0], expected, rtol=1e-12)
    g = sce_grad(z, t, np.float64(1.0), ignore_index=ignore_index)
    numeric = numerical_grad(lambda zz: sce(zz, t, ignore_index=ignore_index)[0], z, 1.0)
    np.testing.assert_allclose(g, numeric, rtol=1e-6, atol=1e-8)
    bad = t.copy()
    bad[7] = 3  # one past the last class
    with pytest.raises(IndexError, match="target 3 is out of bounds for 3 classes"):
        sce(z, bad, ignore_index=ignore_index)
    if np.dtype(dtype).kind == "i":
        bad[7] = -1  # negative: huge when seen as unsigned, so the one-max check catches it
        with pytest.raises(IndexError, match="target -1 is out of bounds"):
            sce(z, bad, ignore_index=ignore_index)


@pytest.mark.parametrize("n, c", [(1, 1), (3, 40), (40, 3), (64, 32), (64, 33), (5, 0)])
def test_row_logsumexp_both_layouts(n, c):
    z = rng.standard_normal((n, c)) * 5
    with np.errstate(divide="ignore"):
        expected = np.log(np.exp(z).sum(axis=1))
    np.testing.assert_allclose(fused_ce.logsumexp_rows(np, z), expected, rtol=1e-13)
    z32 = z.astype(np.float32)
    np.testing.assert_allclose(fused_ce.logsumexp_rows(np, z32), expected, rtol=2e-6)


# ---- softmax cross-entropy: random cases against the composition and finite differences ----------

CASES = list(
    itertools.product(
        # (N, C); N > C <= 32 takes the transposed row reductions of the reference
        [(1, 1), (4, 5), (6, 17), (40, 3), (40, 20)],
        ["none", "sum", "mean"],
        [0.0, 0.2],  # label smoothing
        [False, True],  # class weights
        [False, True],  # some rows ignored
    )
)


def _case(n, c, weighted, ignored):
    z = rng.standard_normal((n, c)) * 3
    t = rng.integers(0, c, n)
    if ignored:
        t[::2] = -100
    w = rng.random(c) + 0.5 if weighted else None
    return z, t, w


@pytest.mark.parametrize("shape, reduction, eps, weighted, ignored", CASES)
def test_cross_entropy_matches_unfused_composition(shape, reduction, eps, weighted, ignored):
    z, t, w = _case(*shape, weighted, ignored)
    with np.errstate(invalid="ignore", divide="ignore"):  # N = 1 with its row ignored: 0 / 0
        loss, saved = sce(z, t, w, reduction=reduction, eps=eps)
        lse = saved.lse
        expected = unfused_cross_entropy(z, t, w, reduction=reduction, eps=eps)
    np.testing.assert_allclose(loss, expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(lse, np.log(np.exp(z).sum(axis=1)), rtol=1e-12)


@pytest.mark.parametrize("shape, reduction, eps, weighted, ignored", CASES)
def test_cross_entropy_backward_matches_finite_differences(
    shape, reduction, eps, weighted, ignored
):
    z, t, w = _case(*shape, weighted, ignored)
    if reduction == "mean" and ignored and shape[0] == 1:
        pytest.skip("mean over zero rows is NaN")
    gloss = (
        rng.standard_normal(shape[0]) if reduction == "none" else np.float64(rng.standard_normal())
    )

    def forward(zz):
        return sce(zz, t, w, reduction=reduction, eps=eps)[0]

    numeric = numerical_grad(forward, z, gloss)
    analytic = sce_grad(z, t, gloss, w, reduction=reduction, eps=eps)
    # the differences' rounding error grows with the summed loss, so with the rows
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8 * shape[0])


def test_cross_entropy_is_shift_invariant_and_stable():
    z = rng.standard_normal((3, 4))
    t = np.array([0, 3, 1])
    base = sce(z, t, reduction="none")[0]
    with np.errstate(all="raise"):
        shifted = sce(z + 1e4, t, reduction="none")[0]  # no overflow: the max is subtracted first
    np.testing.assert_allclose(shifted, base, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_cross_entropy_low_precision_accumulates_in_float32(dtype):
    z = (rng.standard_normal((5, 300)) * 4).astype(dtype)
    t = rng.integers(0, 300, 5)
    loss, saved = sce(z, t)
    lse, denom = saved.lse, saved.denom
    assert loss.dtype == dtype and lse.dtype == np.float32 and denom.dtype == np.float32
    expected = unfused_cross_entropy(z.astype(np.float64), t)
    np.testing.assert_allclose(float(loss), expected, rtol=2e-3 if dtype == np.float16 else 1e-5)
    gloss = np.array(1.0, dtype)
    g = fused_ce.reference_backward(np, z, t, fused_ce.Saved(lse, denom), gloss, fused_ce.Spec())
    assert g.dtype == dtype


def test_cross_entropy_matches_pytorch_when_installed():
    torch = pytest.importorskip("torch")
    z, t, w = _case(6, 9, True, True)
    for reduction, eps in itertools.product(["none", "sum", "mean"], [0.0, 0.15]):
        expected = torch.nn.functional.cross_entropy(
            torch.tensor(z),
            torch.tensor(t),
            weight=torch.tensor(w),
            ignore_index=-100,
            reduction=reduction,
            label_smoothing=eps,
        )
        loss, _ = sce(z, t, w, reduction=reduction, eps=eps)
        np.testing.assert_allclose(loss, expected.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_with_logits_is_stable_for_large_logits(dtype):
    """log(1 + exp(-|x|)) + max(x, 0) - x t, worked out by hand at |x| = 1e4 (no inf, no nan)."""
    import gnn
    import gnn.functional as F

    x = gnn.tensor(np.array([1e4, -1e4, 1e4, -1e4, 0.0], dtype=dtype), requires_grad=True)
    t = gnn.tensor(np.array([1.0, 0.0, 0.0, 1.0, 1.0], dtype=dtype))
    loss = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    # right with certainty costs 0; wrong with certainty costs |x|; x = 0 costs log 2
    np.testing.assert_allclose(loss.numpy(), [0.0, 0.0, 1e4, 1e4, np.log(2.0)], rtol=1e-6)
    loss.sum().backward()
    # d/dx = sigmoid(x) - t: 0, 0, 1, -1, -0.5
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 0.0, 1.0, -1.0, -0.5], atol=1e-6)


# ---- layer norm ----------------------------------------------------------------------------------


def unfused_layer_norm(x, w, b, eps):
    """Written out from the definition: biased variance over each row, then scale and shift."""
    mu = x.sum(axis=1, keepdims=True) / x.shape[1]
    var = ((x - mu) ** 2).sum(axis=1, keepdims=True) / x.shape[1]
    y = (x - mu) / np.sqrt(var + eps)
    return y * (1.0 if w is None else w) + (0.0 if b is None else b)


@pytest.mark.parametrize("affine", [(False, False), (True, False), (True, True), (False, True)])
@pytest.mark.parametrize("n, d", [(1, 1), (3, 7), (5, 40)])
def test_layer_norm_matches_unfused_composition(n, d, affine):
    x = rng.standard_normal((n, d)) * 3 + 1
    w = rng.standard_normal(d) if affine[0] else None
    b = rng.standard_normal(d) if affine[1] else None
    y, saved = fused_ln.reference(np, x, w, b, 1e-5)
    np.testing.assert_allclose(y, unfused_layer_norm(x, w, b, 1e-5), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(saved.mean, x.mean(axis=1), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(saved.rstd, 1 / np.sqrt(x.var(axis=1) + 1e-5), rtol=1e-12)


def test_layer_norm_by_hand():
    # row (1, 3): mean 2, variance 1, so with eps = 0 the row becomes (-1, 1); weight and bias
    y, _ = fused_ln.reference(np, np.array([[1.0, 3.0]]), np.array([2.0, 3.0]), np.ones(2), 0.0)
    np.testing.assert_allclose(y, [[-1.0, 4.0]], rtol=1e-15)


@pytest.mark.parametrize("weighted", [False, True])
def test_layer_norm_backward_matches_finite_differences(weighted):
    n, d = 4, 6
    x = rng.standard_normal((n, d))
    w = rng.standard_normal(d) if weighted else None
    b = rng.standard_normal(d)
    gy = rng.standard_normal((n, d))
    _, saved = fused_ln.reference(np, x, w, b, 1e-5)
    gx, gw, gb = fused_ln.reference_backward(np, x, gy, saved, w, fused_ln.Needs(True, True, True))
    np.testing.assert_allclose(
        gx, numerical_grad(lambda v: unfused_layer_norm(v, w, b, 1e-5), x, gy), rtol=1e-6, atol=1e-8
    )
    np.testing.assert_allclose(gb, gy.sum(axis=0), rtol=1e-12)
    w0 = np.ones(d) if w is None else w
    numeric_w = numerical_grad(lambda v: unfused_layer_norm(x, v, b, 1e-5), w0, gy)
    np.testing.assert_allclose(gw, numeric_w, rtol=1e-6, atol=1e-8)


def test_layer_norm_backward_without_xhat_reads_x():
    """The kernels save only the statistics; the reference's backward then recomputes xhat."""
    x = rng.standard_normal((5, 9)).astype(np.float32)
    w = rng.standard_normal(9).astype(np.float32)
    gy = rng.standard_normal((5, 9)).astype(np.float32)
    _, saved = fused_ln.reference(np, x, w, None, 1e-5)
    stats_only = fused_ln.Saved(saved.mean, saved.rstd)
    needs = fused_ln.Needs(True, True, False)
    full = fused_ln.reference_backward(np, None, gy, saved, w, needs)
    again = fused_ln.reference_backward(np, x, gy, stats_only, w, needs)
    assert full[2] is None and again[2] is None
    for a, b in zip(full[:2], again[:2]):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
