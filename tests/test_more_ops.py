"""The PyTorch conveniences beyond the core ops (gnn/ops/unary.py, select.py, logsumexp, cumsum,
mm, bmm): their errors, the torch.* names at the top of gnn, and PyTorch itself as a second
reference where it is installed. Forward and gradient checks are rows of tests/op_table.py.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import gnn
import gnn.functional as F

X = np.random.default_rng(3).standard_normal((3, 4))


def x(requires_grad: bool = False) -> gnn.Tensor:
    return gnn.tensor(X, requires_grad=requires_grad)


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: F.gather(x(), 1, gnn.tensor([[0, 4]])), IndexError, "index 4 is out of range"),
        (lambda: F.gather(x(), 1, gnn.tensor([0, 1])), ValueError, "as many dims"),
        (lambda: F.gather(x(), 1, gnn.tensor([[0]] * 4)), ValueError, "larger than the input"),
        (lambda: F.gather(x(), 1, gnn.tensor([[0.5]])), TypeError, "integers"),
        (lambda: F.index_select(x(), 0, gnn.tensor([3])), IndexError, "out of range for dim 0"),
        (lambda: F.index_select(x(), 0, gnn.tensor([[0]])), ValueError, "1-D"),
        (lambda: F.narrow(x(), 1, 3, 2), IndexError, "do not fit"),
        (lambda: F.split(x(), [1, 1], 0), ValueError, "do not add up"),
        (lambda: F.split(x(), 0), ValueError, "positive"),
        (lambda: F.chunk(x(), 0), ValueError, "positive integer"),
        (lambda: F.tril(gnn.ones(3)), ValueError, "at least 2 dims"),
        (lambda: F.repeat(x(), 2), ValueError, "at least 2"),
        (lambda: F.mm(x(), gnn.ones(2, 4, 1)), ValueError, "2-D"),
        (lambda: F.bmm(gnn.ones(2, 3, 4), gnn.ones(3, 4, 1)), ValueError, "batch sizes differ"),
        (lambda: F.t(gnn.ones(2, 2, 2)), ValueError, "at most 2 dims"),
        (lambda: F.softplus(x(), beta=0), ValueError, "beta must be > 0"),
        (lambda: F.cumsum(x(), 2), IndexError, "dim 2 is out of range"),
        (lambda: F.flip(x(), (2,)), IndexError, "out of range"),
    ],
)
def test_bad_input_is_a_clear_error(call: Callable, error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        call()


def test_the_torch_names_are_at_the_top_of_gnn() -> None:
    t = x()
    assert np.allclose(gnn.sin(t).numpy(), np.sin(X))
    assert np.allclose(gnn.logsumexp(t, 1).numpy(), np.log(np.exp(X).sum(1)))
    assert gnn.max(t).item() == X.max() and gnn.sum(t, 0).shape == (4,)
    assert [p.shape for p in gnn.chunk(t, 2, 1)] == [(3, 2), (3, 2)]
    assert gnn.tril(t).numpy()[0, 1] == 0 and gnn.t(t).shape == (4, 3)


def test_the_no_gradient_ops_give_tensors_that_need_none() -> None:
    t = x(requires_grad=True)
    for op in (F.sign, F.floor, F.ceil, F.round, F.isnan, F.isfinite):
        assert not op(t).requires_grad
    # and using one in a graph leaves the rest of the gradient intact, as PyTorch's zero does
    (t * F.sign(t)).sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), np.sign(X))


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # NumPy's log(0), as meant
def test_logsumexp_of_minus_infinity_rows_is_minus_infinity() -> None:
    t = gnn.tensor([[-np.inf, -np.inf], [0.0, -np.inf]])
    np.testing.assert_array_equal(F.logsumexp(t, 1).numpy(), [-np.inf, 0.0])


def test_against_pytorch() -> None:
    torch = pytest.importorskip("torch")
    xt = torch.tensor(X, requires_grad=True)
    idx = np.array([[3, 0, 0], [1, 1, 2], [0, 3, 3]])
    pairs = [
        (lambda a: F.softplus(a, 2.0, 1.0), lambda a: torch.nn.functional.softplus(a, 2.0, 1.0)),
        (F.silu, torch.nn.functional.silu),
        (lambda a: F.logsumexp(a, (0, 1)), lambda a: torch.logsumexp(a, (0, 1))),
        (lambda a: F.cumsum(a, 1), lambda a: torch.cumsum(a, 1)),
        (lambda a: F.gather(a, 1, gnn.tensor(idx)), lambda a: a.gather(1, torch.tensor(idx))),
        (lambda a: a.repeat(2, 1, 3), lambda a: a.repeat(2, 1, 3)),
        (lambda a: a.split([1, 3], 1)[1], lambda a: a.split([1, 3], 1)[1]),
        (lambda a: a.chunk(3, 1)[-1], lambda a: a.chunk(3, 1)[-1]),
        (lambda a: a.triu(1), lambda a: a.triu(1)),
        (lambda a: a.flip(0, 1), lambda a: a.flip(0, 1)),
    ]
    for ours, theirs in pairs:
        g = x(requires_grad=True)
        out = ours(g)
        ref = theirs(xt)
        np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-12, atol=1e-12)
        weight = np.random.default_rng(0).standard_normal(tuple(out.shape))
        (out * gnn.tensor(weight)).sum().backward()
        xt.grad = None
        (ref * torch.tensor(weight)).sum().backward()
        np.testing.assert_allclose(g.grad.numpy(), xt.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_in_place_arithmetic(device: str) -> None:
    a = np.arange(6.0).reshape(2, 3)
    t = gnn.tensor(a, device=device)
    other = gnn.tensor([1.0, 2.0, 3.0], device=device)
    assert t.add_(other, alpha=2) is t
    t.sub_(1.0).mul_(other).div_(2.0).clamp_(min=1.0, max=10.0)
    want = np.clip((a + 2 * np.array([1.0, 2, 3]) - 1) * np.array([1.0, 2, 3]) / 2, 1, 10)
    np.testing.assert_allclose(t.numpy(), want)


def test_in_place_arithmetic_refuses_what_it_cannot_do() -> None:
    w = gnn.ones(2, 3, requires_grad=True)
    with pytest.raises(RuntimeError, match="add_: in-place change of a tensor that requires grad"):
        w.add_(1.0)
    with gnn.no_grad():
        w.add_(1.0)  # as an optimizer does
    np.testing.assert_array_equal(w.numpy(), 2.0)
    with pytest.raises(ValueError, match=r"does not broadcast to this tensor's shape \(2, 3\)"):
        gnn.ones(2, 3).mul_(gnn.ones(4))
    with pytest.raises(ValueError, match="give min, max or both"):
        gnn.ones(2).clamp_()
