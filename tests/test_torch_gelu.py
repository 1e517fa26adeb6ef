"""GELU (and the erf under it) to float64 rounding: against math.erf always, PyTorch where it is
installed."""

from __future__ import annotations

import math

import numpy as np
import pytest

import gnn
from gnn.backend import get_backend

RNG = np.random.default_rng(12)
X = np.concatenate([
    RNG.standard_normal(20000) * 3, RNG.uniform(-9.0, 9.0, 5000),
    np.linspace(-1e-6, 1e-6, 101), [0.0, -0.0, 1.0, -1.0, 3.0, -3.0, 6.0, 5.999999, 1e-300],
])  # fmt: skip


def test_erf_float64_is_within_two_ulps_of_math_erf() -> None:
    got = get_backend("cpu").erf(X)
    want = np.array([math.erf(v) for v in X])
    ulps = np.abs(got - want) / np.spacing(np.abs(want))
    assert ulps.max() <= 2, (ulps.max(), X[np.argmax(ulps)])
    assert np.all(np.abs(got) <= 1.0)
    np.testing.assert_array_equal(np.signbit(got[X == 0]), np.signbit(X[X == 0]))


def test_erf_edges() -> None:
    be = get_backend("cpu")
    out = be.erf(np.array([np.inf, -np.inf, np.nan, 40.0, -6.0]))
    assert out[0] == 1.0 and out[1] == -1.0 and np.isnan(out[2])
    assert out[3] == 1.0 and out[4] == -1.0
    assert be.erf(np.array([], dtype=np.float64)).shape == (0,)
    assert be.erf(np.float64(0.5) * np.ones((2, 3))).shape == (2, 3)


def test_erf_float32_keeps_its_fit() -> None:
    x = X.astype(np.float32)
    got = get_backend("cpu").erf(x)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, [math.erf(v) for v in x], atol=2e-7, rtol=0)


def test_gelu_float64_is_exact_to_rounding() -> None:
    x = gnn.tensor(X, dtype="float64")
    want = np.array([v * 0.5 * (1.0 + math.erf(v / math.sqrt(2.0))) for v in X])
    np.testing.assert_allclose(gnn.nn.GELU()(x).numpy(), want, rtol=4e-16, atol=5e-16)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_matches_pytorch_in_float64(approximate: str) -> None:
    torch = pytest.importorskip("torch")
    gy = RNG.standard_normal(X.shape)
    x = gnn.tensor(X, dtype="float64", requires_grad=True)
    y = gnn.nn.GELU(approximate=approximate)(x)
    y.backward(gnn.tensor(gy, dtype="float64"))
    t = torch.tensor(X, requires_grad=True)
    yt = torch.nn.GELU(approximate=approximate)(t)
    yt.backward(torch.tensor(gy))
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-15, atol=1e-15)
    # tanh's gradient cancels in its far negative tail (0.5 (1 + t) with t near -1): there the
    # two libraries' last bits differ by up to 1.5e-14 of a value near 0.
    atol = 1e-15 if approximate == "none" else 5e-14
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-14, atol=atol)
    z = gnn.functional.gelu(gnn.tensor(X, dtype="float64"), approximate=approximate)
    np.testing.assert_array_equal(z.numpy(), y.numpy())
