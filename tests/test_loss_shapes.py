"""nll_loss takes the label shapes cross_entropy takes: one sample (C,), rows (N, C), and
(N, C, d1, ...) with a label per position; its numbers agree with cross_entropy's."""

import numpy as np
import pytest

import gnn
import gnn.functional as F


@pytest.mark.parametrize(
    ("shape", "target_shape"),
    [((4,), ()), ((3, 4), (3,)), ((2, 4, 3), (2, 3)), ((2, 4, 2, 3), (2, 2, 3))],
)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_of_log_softmax_is_cross_entropy(shape, target_shape, reduction):
    rng = np.random.default_rng(0)
    x = gnn.tensor(rng.standard_normal(shape), dtype="float64", requires_grad=True)
    labels = rng.integers(0, 4, size=target_shape)
    if labels.size > 1:
        labels.reshape(-1)[0] = -100  # an ignored position (not the only one: 0 / 0)
    t = gnn.tensor(labels)
    w = gnn.tensor([1.0, 2.0, 0.5, 1.5], dtype="float64")
    nll = F.nll_loss(F.log_softmax(x, 1 if x.ndim > 1 else 0), t, w, reduction=reduction)
    ce = F.cross_entropy(x, t, w, reduction=reduction)
    assert nll.shape == ce.shape
    np.testing.assert_allclose(nll.numpy(), ce.numpy(), rtol=1e-12, atol=1e-12)
    nll.sum().backward()
    g_nll = x.grad.numpy().copy()
    x.grad = None
    ce.sum().backward()
    np.testing.assert_allclose(g_nll, x.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_nll_label_shape_mismatch_says_the_expected_shape():
    with pytest.raises(
        ValueError, match=r"nll_loss: input \(2, 3, 5\) needs target of shape \(2, 5\)"
    ):
        F.nll_loss(gnn.zeros(2, 3, 5), gnn.tensor([0, 1]))


def test_nll_ignored_rows_count_for_nothing_even_when_nan():
    # as in PyTorch (and cross_entropy): an ignored row adds exactly 0, a NaN in it included
    x = gnn.tensor([[np.nan, -1.0], [-0.5, -2.0]], requires_grad=True)
    loss = F.nll_loss(x, gnn.tensor([-100, 0]), reduction="sum")
    assert loss.item() == 0.5
    loss.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0.0, 0.0], [-1.0, 0.0]])
