"""The autograd engine (gnn/autograd.py) and grad mode (gnn/config.py).

Expected gradients are worked out by hand or with NumPy, never taken from gnn itself. Tests that
take the `device` fixture (tests/conftest.py) also run on CUDA where a GPU is present.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

import gnn
from gnn.autograd import Function


@pytest.fixture(autouse=True)
def _restore_grad_mode() -> Any:
    """A failing grad-mode test must not leave recording off for the tests after it."""
    yield
    gnn.set_grad_enabled(True)


def leaf(values: Any, dtype: str = "float64", device: str = "cpu") -> gnn.Tensor:
    return gnn.tensor(np.asarray(values, dtype=dtype), device=device, requires_grad=True)


# ---- basics ----------------------------------------------------------------------------------


def test_grad_is_none_before_backward() -> None:
    x = leaf([1.0, 2.0])
    y = x * 3.0
    assert x.grad is None and y.grad is None
    assert x.is_leaf and not y.is_leaf


def test_backward_on_a_scalar(device: str) -> None:
    x = leaf([1.0, -2.0, 3.0], device=device)
    y = (x * x * 2.0).sum()  # d/dx 2x^2 = 4x
    assert y.shape == ()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, -8.0, 12.0])
    assert x.grad.shape == x.shape and x.grad.dtype == x.dtype and x.grad.device == device
    assert not x.grad.requires_grad


def test_intermediate_tensors_get_no_grad() -> None:
    x = leaf([1.0, 2.0])
    h = x * 2.0
    (h * h).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [8.0, 16.0])  # d/dx 4x^2
    assert h.grad is None  # only leaves accumulate, as in PyTorch without retain_grad


def test_backward_on_a_leaf_seeds_its_own_grad() -> None:
    x = gnn.tensor(3.0, requires_grad=True)
    x.backward()
    assert x.grad.item() == 1.0


def test_one_element_non_scalar_output_needs_no_explicit_gradient() -> None:
    x = leaf([[2.0]])
    (x * x).backward()
    np.testing.assert_allclose(x.grad.numpy(), [[4.0]])


def test_explicit_gradient_as_tensor_array_or_list(device: str) -> None:
    g = np.array([1.0, 10.0, 100.0])
    for seed in (gnn.tensor(g, device=device), g, g.tolist()):
        x = leaf([1.0, 2.0, 3.0], device=device)
        (x * x).backward(seed)  # vector-Jacobian product: g * 2x
        np.testing.assert_allclose(x.grad.numpy(), [2.0, 40.0, 600.0])


# ---- accumulation and shared leaves -------------------------------------------------------------


def test_gradients_accumulate_across_backward_calls(device: str) -> None:
    x = leaf([1.0, 2.0], device=device)
    (x * 3.0).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0 + 2.0, 3.0 + 4.0])


def test_diamond_graph_sums_every_path(device: str) -> None:
    x = leaf([1.0, 2.0, -1.0], device=device)
    a = x * 2.0
    b = x * x
    c = a * b  # 2x^3
    y = c.sum() + x.sum() + (a + b).sum()  # d/dx: 6x^2 + 1 + 2 + 2x
    y.backward()
    xv = np.array([1.0, 2.0, -1.0])
    np.testing.assert_allclose(x.grad.numpy(), 6 * xv**2 + 3 + 2 * xv)


def test_leaf_used_many_times(device: str) -> None:
    x = leaf([1.5, -0.5], device=device)
    y = x
    for _ in range(49):
        y = y + x  # 50 x
    (y * x).sum().backward()  # d/dx 50 x^2 = 100 x
    np.testing.assert_allclose(x.grad.numpy(), [150.0, -50.0])


def test_same_tensor_as_both_operands(device: str) -> None:
    x = leaf([3.0], device=device)
    (x + x).backward()  # add hands one array to both inputs: it must be counted twice
    assert x.grad.item() == 2.0
    z = leaf([3.0], device=device)
    (z * z).backward()
    assert z.grad.item() == 6.0


def test_grads_of_two_leaves_are_independent_arrays(device: str) -> None:
    # add's backward returns the same gradient array for both inputs; optimizers change .grad
    # in place, so the leaves must not share it, nor share the seed the caller passed.
    a, b = leaf([1.0, 2.0], device=device), leaf([3.0, 4.0], device=device)
    seed = np.array([1.0, 1.0])
    (a + b).backward(seed)
    a.grad.array *= 10
    seed *= 7
    np.testing.assert_allclose(b.grad.numpy(), [1.0, 1.0])
    np.testing.assert_allclose(a.grad.numpy(), [10.0, 10.0])


def test_grad_keeps_the_leaf_dtype(device: str) -> None:
    x = gnn.tensor([1.0, 2.0], requires_grad=True, device=device)  # float32
    w = gnn.tensor([3.0, 4.0], dtype=gnn.float64, device=device)
    (x * w).sum().backward()
    assert x.grad.dtype == gnn.float32
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 4.0])
    h = gnn.tensor([1.0, 2.0], dtype="float16", requires_grad=True, device=device)
    (h * h).sum().backward()
    assert h.grad.dtype == gnn.float16
    np.testing.assert_allclose(h.grad.numpy(), [2.0, 4.0])


# ---- broadcasting ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape_a", "shape_b"),
    [
        ((3, 1), (1, 4)),
        ((), (2, 3)),
        ((4,), (2, 3, 4)),
        ((2, 1, 4), (3, 1)),
        ((1, 1), (5,)),
        ((2, 3), (2, 3)),
    ],
)
def test_broadcast_gradients_are_reduced_to_input_shapes(
    shape_a: tuple, shape_b: tuple, device: str
) -> None:
    rng = np.random.default_rng(0)
    av, bv = rng.normal(size=shape_a), rng.normal(size=shape_b)
    out_shape = np.broadcast_shapes(shape_a, shape_b)
    gy = rng.normal(size=out_shape)
    a, b = leaf(av, device=device), leaf(bv, device=device)
    (a * b).backward(gy)

    def reduce_to(g: np.ndarray, shape: tuple) -> np.ndarray:
        lead = g.ndim - len(shape)
        g = g.sum(axis=tuple(range(lead)))
        axes = tuple(i for i, n in enumerate(shape) if n == 1)
        return g.sum(axis=axes, keepdims=True)

    b_full = np.broadcast_to(bv, out_shape)
    a_full = np.broadcast_to(av, out_shape)
    assert a.grad.shape == shape_a and b.grad.shape == shape_b
    np.testing.assert_allclose(a.grad.numpy(), reduce_to(gy * b_full, shape_a))
    np.testing.assert_allclose(b.grad.numpy(), reduce_to(gy * a_full, shape_b))


def test_broadcast_gradient_of_a_python_scalar_operand_is_ignored() -> None:
    x = leaf([[1.0, 2.0], [3.0, 4.0]])
    (x + 1.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.ones((2, 2)))


# ---- grad mode ---------------------------------------------------------------------------------


def test_no_grad_records_nothing() -> None:
    x = leaf([1.0, 2.0])
    with gnn.no_grad():
        assert not gnn.is_grad_enabled()
        y = x * 2.0
    assert gnn.is_grad_enabled()
    assert not y.requires_grad and y.is_leaf
    np.testing.assert_allclose(y.numpy(), [2.0, 4.0])
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()


def test_no_grad_restores_the_mode_after_an_exception() -> None:
    with pytest.raises(KeyError), gnn.no_grad():
        raise KeyError("boom")
    assert gnn.is_grad_enabled()


def test_no_grad_as_decorator_and_enable_grad_inside_it() -> None:
    x = leaf([1.0])

    @gnn.no_grad()
    def double(t: gnn.Tensor) -> gnn.Tensor:
        return t * 2.0

    assert not double(x).requires_grad
    assert gnn.is_grad_enabled()
    with gnn.no_grad():
        with gnn.enable_grad():
            y = x * 2.0
        z = x * 2.0
    assert y.requires_grad and not y.is_leaf
    assert not z.requires_grad
    y.backward()
    assert x.grad.item() == 2.0


def test_set_grad_enabled_as_call_and_as_context_manager() -> None:
    x = leaf([1.0])
    try:
        gnn.set_grad_enabled(False)
        assert not gnn.is_grad_enabled()
        assert not (x * 2.0).requires_grad
    finally:
        gnn.set_grad_enabled(True)
    assert (x * 2.0).requires_grad
    with gnn.set_grad_enabled(False):  # the PyTorch idiom: with torch.set_grad_enabled(train)
        assert not (x * 2.0).requires_grad
    assert gnn.is_grad_enabled()
    with gnn.no_grad(), gnn.set_grad_enabled(True):
        assert (x * 2.0).requires_grad
    assert gnn.is_grad_enabled()


def test_grad_mode_is_per_thread() -> None:
    seen = []
    with gnn.no_grad():
        worker = threading.Thread(target=lambda: seen.append(gnn.is_grad_enabled()))
        worker.start()
        worker.join()
    assert seen == [True]


def test_result_requires_grad_only_when_an_input_does() -> None:
    x = leaf([1.0, 2.0])
    c = gnn.tensor([3.0, 4.0], dtype=gnn.float64)
    assert (x * c).requires_grad and (c * x).requires_grad
    assert not (c * c).requires_grad
    assert not (x > 0).requires_grad  # comparisons and integer results are not differentiable
    assert not x.argmax().requires_grad


# ---- detach ------------------------------------------------------------------------------------


def test_detach_cuts_the_graph_and_shares_data() -> None:
    x = leaf([1.0, 2.0])
    d = x.detach()
    assert not d.requires_grad and d.is_leaf and d.grad is None
    d.array[0] = 5.0  # same memory, as torch.detach
    assert x.numpy()[0] == 5.0
    (d * x).sum().backward()  # only the path through x counts: d/dx = d
    np.testing.assert_allclose(x.grad.numpy(), [5.0, 2.0])
    h = (x * 3.0).detach()
    assert h.is_leaf and not h.requires_grad


# ---- retain_graph and freeing ------------------------------------------------------------------


def test_retain_graph_allows_a_second_backward(device: str) -> None:
    x = leaf([1.0, 2.0], device=device)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 8.0])  # 2 * 2x


def test_second_backward_through_a_freed_graph_is_a_clear_error(device: str) -> None:
    x = leaf([1.0, 2.0], device=device)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match=r"already freed.*retain_graph=True"):
        y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])  # unchanged by the failed call


def test_backward_through_a_shared_freed_subgraph_is_a_clear_error() -> None:
    x = leaf([1.0, 2.0])
    h = x * x
    h.sum().backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        (h * 3.0).sum().backward()


class Square(Function):
    """A test-only op that saves its input, to see what the engine does with saved arrays."""

    calls = 0

    def forward(self, x: Any) -> Any:
        self.x = x
        return x * x

    def backward(self, gy: Any) -> Any:
        Square.calls += 1
        return 2 * self.x * gy


def test_engine_frees_saved_arrays_and_calls_each_backward_once(device: str) -> None:
    x = leaf([3.0], device=device)
    Square.calls = 0
    y = Square.apply(x)
    fn = y._creator
    assert isinstance(fn, Square) and fn.needs_input_grad == (True,)
    z = y + y  # y's gradient arrives along two edges but its backward runs once
    z.backward()
    assert Square.calls == 1
    assert x.grad.item() == 12.0  # d/dx 2x^2
    assert not hasattr(fn, "x") and not hasattr(fn, "inputs")


def test_retained_graph_keeps_saved_arrays() -> None:
    x = leaf([3.0])
    y = Square.apply(x)
    y.backward(retain_graph=True)
    assert hasattr(y._creator, "x")


def test_function_is_not_recorded_without_an_input_that_requires_grad() -> None:
    c = gnn.tensor([2.0])
    y = Square.apply(c)
    assert y.is_leaf and not y.requires_grad
    np.testing.assert_allclose(y.numpy(), [4.0])


# ---- errors ------------------------------------------------------------------------------------


def test_backward_on_non_scalar_without_gradient_names_the_shape() -> None:
    x = leaf(np.ones((2, 3)))
    with pytest.raises(RuntimeError, match=r"scalar.*\(2, 3\)"):
        (x * 2.0).backward()


def test_backward_with_gradient_of_wrong_shape() -> None:
    x = leaf(np.ones((2, 3)))
    with pytest.raises(RuntimeError, match=r"\(3, 2\).*\(2, 3\)"):
        (x * 2.0).backward(np.ones((3, 2)))
    with pytest.raises(RuntimeError, match=r"\(6,\).*\(2, 3\)"):  # same size is not enough
        (x * 2.0).backward(gnn.ones(6, dtype=gnn.float64))
    assert x.grad is None


def test_backward_without_a_graph_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="does not require grad"):
        gnn.tensor([1.0, 2.0]).sum().backward()


# ---- deep graphs -------------------------------------------------------------------------------


def test_very_deep_graph_has_no_recursion_limit(device: str) -> None:
    x = gnn.tensor(0.5, requires_grad=True, device=device)
    y = x
    for _ in range(10_000):
        y = y + 1.0
    y = y * x  # d/dx (x + 10000) x = 2x + 10000
    y.backward()
    assert y.item() == pytest.approx(0.5 * 10_000.5)
    assert x.grad.item() == pytest.approx(10_001.0)


# ---- integer tensors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: gnn.tensor([1, 2], requires_grad=True),
        lambda: gnn.zeros(2, dtype=gnn.int64, requires_grad=True),
        lambda: gnn.arange(3, requires_grad=True),
        lambda: gnn.full((2,), 7, requires_grad=True),
        lambda: gnn.tensor([True]).requires_grad_(),
    ],
)
def test_integer_and_bool_tensors_cannot_require_grad(make: Any) -> None:
    # PyTorch refuses too: there is no gradient on a discrete value.
    with pytest.raises(RuntimeError, match="floating-point"):
        make()


def test_integer_operand_gets_no_gradient() -> None:
    x = leaf([1.0, 2.0])
    n = gnn.tensor([3, 4])
    (x * n).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 4.0])
    assert n.grad is None and not n.requires_grad


def test_requires_grad_false_on_a_non_leaf_is_refused() -> None:
    y = leaf([1.0]) * 2.0
    with pytest.raises(RuntimeError, match="detach"):
        y.requires_grad_(False)


class _CupyLikeArray(np.ndarray):
    """A NumPy array whose flags look like CuPy's: no `writeable` attribute."""

    @property
    def flags(self) -> Any:  # type: ignore[override]
        real = np.asarray(self).flags
        return type("Flags", (), {"c_contiguous": real.c_contiguous, "owndata": real.owndata})()


def test_leaf_accumulation_works_with_cupy_style_flags() -> None:
    from gnn.autograd import _hand_on

    x = leaf([1.0, 2.0])
    g = np.array([3.0, 4.0]).view(_CupyLikeArray)
    _hand_on(x, g, {}, [], [])  # CuPy arrays have no flags.writeable: this must not raise
    _hand_on(x, np.array([1.0, 1.0]), {}, [], [])
    np.testing.assert_allclose(np.asarray(x.grad.array), [4.0, 5.0])


# ---- the cached backward seed ------------------------------------------------------------------


def _seed_of(t: gnn.Tensor) -> Any:
    """The seed backward starts from for a one-element t: the backend's cached 1 (constant),
    viewed in t's shape once and cached."""
    from gnn.autograd import _ones

    return _ones(t._be, t.array.dtype, t.shape)


@pytest.mark.parametrize("loss_name", ["mse", "cross_entropy", "sum"])
def test_two_backwards_share_one_unchanged_seed(device: str, loss_name: str) -> None:
    """A scalar's seed of ones is made once and shared; no loss's backward may write into it."""
    w0 = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])
    x = np.array([[1.0, 2.0], [-1.0, 0.5]])
    w = leaf(w0, device=device)
    xt = gnn.tensor(x, device=device)
    seeds = []
    for _ in range(2):
        z = xt @ w
        if loss_name == "mse":
            loss = gnn.nn.functional.mse_loss(z, gnn.zeros_like(z))
        elif loss_name == "cross_entropy":
            loss = gnn.nn.functional.cross_entropy(z, gnn.tensor([2, 0], device=device))
        else:
            loss = z.sum()
        loss.backward()
        seeds.append(_seed_of(loss))
    if loss_name == "mse":
        one = x.T @ (2 * (x @ w0) / 6)
    elif loss_name == "cross_entropy":
        p = np.exp(x @ w0 - (x @ w0).max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        p[[0, 1], [2, 0]] -= 1
        one = x.T @ (p / 2)
    else:
        one = x.T @ np.ones((2, 3))
    np.testing.assert_allclose(w.grad.numpy(), 2 * one, rtol=1e-12)
    assert seeds[0] is seeds[1] and seeds[0].shape == ()  # no backward reshaped it in place
    np.testing.assert_array_equal(loss._be.to_numpy(seeds[0]), 1.0)


def test_a_leaf_handed_the_seed_keeps_a_copy(device: str) -> None:
    """A scalar leaf, or a view of one, is given the seed itself: its .grad must not be it.

    On the CPU the seed is read-only; on a GPU (the fake CuPy too) it is not, and a leaf finds a
    view of it by its pointer."""
    x = leaf(3.0, device=device)
    y = leaf([3.0], device=device)
    for _ in range(3):
        x.backward()
        y.reshape(()).backward()
    np.testing.assert_array_equal(x.grad.numpy(), 3.0)
    np.testing.assert_array_equal(y.grad.numpy(), [3.0])
    np.testing.assert_array_equal(x._be.to_numpy(_seed_of(x)), 1.0)


def test_a_gradient_home_is_forgotten_when_its_parameter_dies() -> None:
    from gnn import autograd

    p = leaf([1.0, 2.0])
    autograd.set_home(p, np.zeros(2))
    key = id(p)
    assert autograd.home_of(p) is not None and key in autograd.homes
    del p  # its id may be reused by the next object: the entry must not outlive it
    assert key not in autograd.homes
