"""One gradient array for several inputs (gnn/autograd.py's _share).

add's backward returns its incoming gradient for both operands. The engine hands that one array
on to both Functions without a copy (every residual connection saves one), which is right only
while no backward writes into its incoming gradient and no leaf keeps a shared array as its .grad.
These tests hold residual networks to the old engine (a copy for every repeat) and to central
differences, and hold every op of tests/op_table.py to leaving its incoming gradient as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from op_table import ROWS
from test_ops import GRAD_CASES, input_values, make_call

import gnn
import gnn.autograd as autograd
import gnn.functional as F
from gnn.autograd import Function
from gnn.testing import gradcheck

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def copying_share(inputs: tuple, needs: tuple, gxs: Any, shared: list) -> list:
    """The engine before: every input after the first that gets the same array gets a copy."""
    out: list[Any] = []
    for need, g in zip(needs, gxs):
        if need and g is not None and any(h is g for h in out):
            g = g.copy()
        out.append(g)
    return out


def leaf(rng: np.random.Generator, shape: tuple, device: str) -> gnn.Tensor:
    return gnn.tensor(rng.standard_normal(shape), device=device, requires_grad=True)


def block(x: gnn.Tensor, w: gnn.Tensor) -> gnn.Tensor:
    return F.tanh(x @ w)


def residual(x: gnn.Tensor, w1: gnn.Tensor, w2: gnn.Tensor) -> gnn.Tensor:
    h = x + block(x, w1)
    return h + block(h, w2)


def nested(x: gnn.Tensor, w1: gnn.Tensor, w2: gnn.Tensor) -> gnn.Tensor:
    h = x + block(x + block(x, w1), w2)  # a residual inside a residual
    return (h + h) * 0.5 + F.reshape(h, (-1,)).sum() * x


def leaves_both_sides(x: gnn.Tensor, w1: gnn.Tensor, w2: gnn.Tensor) -> gnn.Tensor:
    a = x + x  # one leaf twice
    b = w1 + w2  # a leaf on each side
    c = x + x.detach()  # one side needs no gradient
    return (a @ b) * 3.0 + c @ w1


def views_to_a_leaf(x: gnn.Tensor, w1: gnn.Tensor, w2: gnn.Tensor) -> gnn.Tensor:
    """A shared gradient handed on as a view (reshape, transpose) to a leaf that gets more later."""
    y = F.reshape(x, (-1,)) * 1.0
    s = F.reshape(x, (-1,)) + y  # x (through reshape) and a Function share one array
    t = s + F.reshape(block(x, w1), (-1,))  # three Functions share one array
    u = F.transpose(w2, 0, 1) + w1  # a view of w2 and the leaf w1
    return (t * t).sum() + (u @ x.T).sum() * 2.0 + F.tanh(x).sum()


def leaf_gets_more_first(x: gnn.Tensor, w1: gnn.Tensor, w2: gnn.Tensor) -> gnn.Tensor:
    """x is handed the outer add's array, then more (from tanh) before x * 3.0 reads it."""
    return (x + (x * 3.0 + F.tanh(x))) @ w1


def view_gets_more_first(x: gnn.Tensor, w1: gnn.Tensor, w2: gnn.Tensor) -> gnn.Tensor:
    """As leaf_gets_more_first, with the shared array reaching x as a view (through reshape)."""
    flat = F.reshape(x * 3.0, (-1,)) + F.reshape(F.tanh(x), (-1,))
    return F.reshape(F.reshape(x, (-1,)) + flat, (3, 3)) @ w1


def in_place_after_add(x: gnn.Tensor, w1: gnn.Tensor, w2: gnn.Tensor) -> gnn.Tensor:
    h = x + block(x, w1)
    h += 1.0  # gnn's += makes a new Tensor
    h *= 2.0
    return h + block(h, w2)


NETS = [
    residual,
    nested,
    leaves_both_sides,
    views_to_a_leaf,
    leaf_gets_more_first,
    view_gets_more_first,
    in_place_after_add,
]


def run(net: Callable, device: str, steps: int = 2) -> list[np.ndarray]:
    """Gradients after `steps` backward passes (the second adds into the first's .grads)."""
    rng = np.random.default_rng(0)
    x, w1, w2 = leaf(rng, (3, 3), device), leaf(rng, (3, 3), device), leaf(rng, (3, 3), device)
    gy = rng.standard_normal((3, 3))
    for _ in range(steps):
        y = net(x, w1, w2)
        if y.ndim:
            y.backward(gnn.tensor(gy[: y.shape[0]] if y.ndim == 2 else gy[0, 0], device=device))
        else:
            y.backward()
    return [np.zeros(3) if t.grad is None else t.grad.numpy().copy() for t in (x, w1, w2)]


@pytest.mark.parametrize("net", NETS, ids=lambda n: n.__name__)
def test_shared_gradients_match_the_copying_engine(
    net: Callable, device: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    got = run(net, device)
    monkeypatch.setattr(autograd, "_share", copying_share)
    want = run(net, device)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


# leaves_both_sides is left out: central differences move x.detach() along with x.
@pytest.mark.parametrize(
    "net", [n for n in NETS if n is not leaves_both_sides], ids=lambda n: n.__name__
)
def test_shared_gradients_match_central_differences(net: Callable) -> None:
    rng = np.random.default_rng(1)
    xs = [leaf(rng, (3, 3), "cpu") for _ in range(3)]
    assert gradcheck(lambda *a: net(*a), xs)


@pytest.mark.gpu
@pytest.mark.parametrize("net", NETS, ids=lambda n: n.__name__)
def test_shared_gradients_without_read_only_arrays(
    net: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CuPy's arrays cannot be made read-only: on the fake CuPy with its flags' writeable hidden,
    shared arrays are found by their pointers instead."""
    cupy = pytest.importorskip("cupy")
    if not getattr(cupy, "FAKE", False) and "fake_gpu" not in (cupy.__file__ or ""):
        pytest.skip("the fake CuPy only")

    class Flags:
        def __init__(self, flags: Any) -> None:
            self._flags = flags

        def __getattr__(self, name: str) -> Any:
            if name == "writeable":
                raise AttributeError(name)
            return getattr(self._flags, name)

    want = run(net, "cuda")
    monkeypatch.setattr(cupy.ndarray, "flags", property(lambda self: Flags(self._a.flags)))
    got = run(net, "cuda")
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


def test_retain_graph_twice_over_shared_gradients(device: str) -> None:
    rng = np.random.default_rng(2)
    x, w1, w2 = (leaf(rng, (3, 3), device) for _ in range(3))
    y = residual(x, w1, w2).sum()
    y.backward(retain_graph=True)
    once = [gnn.Tensor.numpy(t.grad).copy() for t in (x, w1, w2) if t.grad is not None]
    y.backward()
    for t, g in zip((x, w1, w2), once):
        assert t.grad is not None
        np.testing.assert_allclose(t.grad.numpy(), 2 * g, rtol=1e-12)


def test_no_leaf_keeps_a_shared_array(device: str) -> None:
    """x gets its first gradient as a view of an array two Functions share; it must be a copy."""
    rng = np.random.default_rng(3)
    x = leaf(rng, (2, 3), device)
    y = F.reshape(x, (6,)) * 1.0
    z = (F.reshape(x, (6,)) + y) * 2.0
    z.sum().backward()
    assert x.grad is not None
    g = x.grad.numpy().copy()
    x.grad.array += 1.0  # would change the other branch's array were it shared
    np.testing.assert_allclose(g, np.full((2, 3), 4.0))


def test_share_copies_for_a_cupy_like_leaf() -> None:
    """Where arrays cannot be read-only (CuPy), shared arrays are noted, and found by pointer."""
    a = np.zeros(6)

    class Ptr:
        def __init__(self, p: int) -> None:
            self.ptr = p

    class Arr:
        def __init__(self, p: int, n: int) -> None:
            self.data, self.nbytes = Ptr(p), n

    base = a.__array_interface__["data"][0]
    shared = [Arr(base, 48)]
    assert autograd._aliases(Arr(base + 8, 8), shared)
    assert not autograd._aliases(Arr(base + 48, 8), shared)


# ---- no backward writes into its incoming gradient ----------------------------------------------


def host(a: Any) -> np.ndarray:
    return a.get() if hasattr(a, "get") else a  # a (fake) CuPy array: a copy to the host


def all_functions() -> list[type]:
    seen: list[type] = []
    todo = [Function]
    while todo:
        c = todo.pop()
        for s in c.__subclasses__():
            if s not in seen:
                seen.append(s)
                todo.append(s)
    return seen


@pytest.mark.parametrize("row, c", GRAD_CASES)
def test_backward_leaves_its_incoming_gradient_alone(
    row: Any, c: Any, device: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshots: list[tuple[Any, Any]] = []
    for cls in all_functions():
        if "backward" not in cls.__dict__:
            continue

        def wrapped(self: Any, gy: Any, _orig: Any = cls.__dict__["backward"]) -> Any:
            before = gy.copy()
            out = _orig(self, gy)
            snapshots.append((gy, before))
            # now: a leaf may keep a gradient handed on as it is, and add into it later
            np.testing.assert_array_equal(
                host(gy), host(before), err_msg=f"{type(self).__name__} wrote into gy"
            )
            return out

        monkeypatch.setattr(cls, "backward", wrapped)
    call = make_call(row, c, input_values(row, c), np.float64, device)
    y = call.run(row.call)
    outs = y if isinstance(y, tuple) else (y,)
    rng = np.random.default_rng(4)
    for o in outs:
        if o.requires_grad:
            o.backward(gnn.tensor(rng.standard_normal(o.shape), device=device))
    assert snapshots or not any(o._creator is not None for o in outs)


def test_the_gy_check_can_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    """A backward that scales its incoming gradient in place is caught (a read-only view raises)."""
    from gnn.ops.elementwise import Mul

    orig = Mul.backward

    def in_place(self: Any, gy: Any) -> Any:
        gy *= 1.0
        return orig(self, gy)

    monkeypatch.setattr(Mul, "backward", in_place)
    x = gnn.tensor(np.ones(3), requires_grad=True)
    w = gnn.tensor(np.ones(3), requires_grad=True)
    y = (x * w) + (x * w)  # two Muls share one (read-only) gradient array
    with pytest.raises(ValueError, match="read-only"):
        y.backward(gnn.tensor(np.ones(3)))


assert ROWS  # the op table loaded


def test_zero_dimensional_residual_add() -> None:
    """0-d math gives NumPy scalars, whose flags cannot be set: sharing one must still work."""
    a = gnn.tensor(2.0, dtype="float64", requires_grad=True)
    h = a * 3.0
    ((h + h * 2.0) * 1.5).backward()  # mul's 0-d gradient is a NumPy scalar, shared by add
    assert a.grad is not None and float(a.grad.numpy()) == 13.5
