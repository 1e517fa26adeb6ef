"""F.dropout: inverted dropout, its gradient, its statistics, and seeded reproducibility."""

from __future__ import annotations

import numpy as np
import pytest

import gnn
import gnn.functional as F


@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
def test_kept_elements_are_scaled_and_the_gradient_uses_the_same_mask(p):
    gnn.manual_seed(3)
    x = gnn.tensor(np.random.default_rng(0).uniform(1, 2, (64, 50)), requires_grad=True)
    y = F.dropout(x, p=p, training=True)
    kept = y.numpy() != 0
    # kept elements are x / (1 - p) exactly; dropped ones are 0
    np.testing.assert_allclose(y.numpy()[kept], x.numpy()[kept] / (1 - p), rtol=1e-12)
    gy = np.random.default_rng(1).standard_normal(x.shape)
    y.backward(gnn.tensor(gy))
    np.testing.assert_allclose(x.grad.numpy(), np.where(kept, gy / (1 - p), 0.0), rtol=1e-12)
    # the fraction dropped is p, within 4 standard deviations of a binomial
    n = kept.size
    assert abs((1 - kept.mean()) - p) < 4 * np.sqrt(p * (1 - p) / n)


def test_eval_mode_p0_and_p1():
    x = gnn.randn(5, 4, requires_grad=True)
    assert F.dropout(x, p=0.5, training=False) is x
    assert F.dropout(x, p=0.0) is x
    y = F.dropout(x, p=1.0)
    np.testing.assert_array_equal(y.numpy(), 0.0)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), 0.0)


def test_masks_repeat_under_manual_seed():
    x = gnn.ones(100)
    gnn.manual_seed(7)
    a = F.dropout(x, 0.5).numpy()
    gnn.manual_seed(7)
    b = F.dropout(x, 0.5).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, F.dropout(x, 0.5).numpy())


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_p_outside_range_is_an_error(p):
    with pytest.raises(ValueError, match="dropout: p must be in"):
        F.dropout(gnn.ones(3), p=p)
