"""PyTorch's other spellings of gnn's ops, div's rounding modes, new_* constructors, __format__
and multinomial, checked against PyTorch where it is installed (and by their own rules without)."""

from __future__ import annotations

import numpy as np
import pytest

import gnn

A = np.array([[1.5, -2.0, 3.25], [-0.5, 7.0, -4.0]])
B = np.array([[2.0, 3.0, -1.5], [0.25, -2.0, 4.0]])

BINARY = ["add", "sub", "subtract", "mul", "multiply", "div", "divide", "true_divide",
          "greater", "greater_equal", "less", "less_equal", "not_equal", "eq", "ne", "gt",
          "ge", "lt", "le", "pow"]  # fmt: skip
UNARY = ["negative", "absolute", "neg", "clone", "relu"]


@pytest.mark.parametrize("name", BINARY)
def test_binary_spellings_match_pytorch(name: str) -> None:
    torch = pytest.importorskip("torch")
    a, b = (np.abs(A), B) if name == "pow" else (A, B)
    want = getattr(torch, name)(torch.tensor(a), torch.tensor(b)).numpy()
    got_fn = getattr(gnn, name)(gnn.tensor(a, dtype="float64"), gnn.tensor(b, dtype="float64"))
    got_method = getattr(gnn.tensor(a, dtype="float64"), name)(gnn.tensor(b, dtype="float64"))
    np.testing.assert_array_equal(got_fn.numpy(), want)
    np.testing.assert_array_equal(got_method.numpy(), want)


@pytest.mark.parametrize("name", UNARY)
def test_unary_spellings_match_pytorch(name: str) -> None:
    torch = pytest.importorskip("torch")
    want = getattr(torch, name)(torch.tensor(A)).numpy()
    np.testing.assert_array_equal(getattr(gnn, name)(gnn.tensor(A, dtype="float64")).numpy(), want)
    np.testing.assert_array_equal(getattr(gnn.tensor(A, dtype="float64"), name)().numpy(), want)


def test_alpha_arguments_and_their_gradients_match_pytorch() -> None:
    torch = pytest.importorskip("torch")
    x, y = gnn.tensor(A, requires_grad=True, dtype="float64"), gnn.tensor(B, dtype="float64")
    tx, ty = torch.tensor(A, requires_grad=True), torch.tensor(B)
    out = (gnn.add(x, y, alpha=2.5) * x.sub(y, alpha=-0.5) + gnn.sub(x, 1.0, alpha=3)).sum()
    ref = torch.add(tx, ty, alpha=2.5) * tx.sub(ty, alpha=-0.5) + torch.sub(tx, 1.0, alpha=3)
    out.backward()
    ref.sum().backward()
    np.testing.assert_allclose(out.item(), ref.sum().item(), rtol=1e-15)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-15)


@pytest.mark.parametrize("mode", ["trunc", "floor"])
@pytest.mark.parametrize("ints", [True, False])
def test_div_rounding_modes_match_pytorch(mode: str, ints: bool) -> None:
    torch = pytest.importorskip("torch")
    a = np.array([-7, 7, -8, 9, 0, -1]) if ints else np.array([-7.5, 7.25, -8.0, 9.9, 0.0, -1e-3])
    b = np.array([2, -2, 4, 3, 5, 3]) if ints else np.array([2.0, -2.0, 4.0, 0.3, 5.0, 3.0])
    want = torch.div(torch.tensor(a), torch.tensor(b), rounding_mode=mode)
    got = gnn.div(gnn.tensor(a), gnn.tensor(b), rounding_mode=mode)
    assert str(got.dtype) == str(want.dtype).replace("torch.", "")
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    np.testing.assert_array_equal(gnn.tensor(a).div(gnn.tensor(b), rounding_mode=mode).numpy(),
                                  want.numpy())  # fmt: skip


def test_div_checks_its_rounding_mode_and_integer_zero() -> None:
    with pytest.raises(ValueError, match="rounding_mode must be None, 'trunc' or 'floor'"):
        gnn.tensor([1.0]).div(2, rounding_mode="round")
    with pytest.raises(ZeroDivisionError, match="integer division by zero"):
        gnn.div(gnn.tensor([1]), gnn.tensor([0]), rounding_mode="floor")


def test_shape_and_join_spellings_match_pytorch() -> None:
    torch = pytest.importorskip("torch")
    x = np.arange(24.0).reshape(2, 3, 4)
    g, t = gnn.tensor(x), torch.tensor(x)
    np.testing.assert_array_equal(gnn.swapaxes(g, 0, 2).numpy(), torch.swapaxes(t, 0, 2).numpy())
    np.testing.assert_array_equal(g.swapdims(1, 2).numpy(), t.swapdims(1, 2).numpy())
    np.testing.assert_array_equal(gnn.concat([g, g], 1).numpy(), torch.concat([t, t], 1).numpy())
    np.testing.assert_array_equal(gnn.concatenate([g, g], axis=2).numpy(),
                                  torch.concatenate([t, t], axis=2).numpy())  # fmt: skip
    for got, want in zip(g.unbind(1), t.unbind(1)):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    assert len(gnn.unbind(g)) == 2
    v = np.array([[3.0, 1.0, 2.0, 1.0], [0.5, -1.0, 9.0, 0.0]])
    np.testing.assert_array_equal(gnn.argsort(gnn.tensor(v)).numpy(),
                                  torch.argsort(torch.tensor(v), stable=True).numpy())  # fmt: skip
    want = torch.tensor(v).argsort(dim=0, descending=True, stable=True).numpy()
    np.testing.assert_array_equal(gnn.tensor(v).argsort(dim=0, descending=True).numpy(), want)
    np.testing.assert_array_equal(gnn.clip(gnn.tensor(v), -0.5, 2.5).numpy(),
                                  torch.clip(torch.tensor(v), -0.5, 2.5).numpy())  # fmt: skip
    w = gnn.tensor(v)
    tv = torch.tensor(v)
    np.testing.assert_array_equal(w.where(w > 1, 0.0).numpy(), tv.where(tv > 1, 0.0).numpy())


def test_unbind_carries_gradients() -> None:
    x = gnn.tensor(A, dtype="float64", requires_grad=True)
    a, b = x.unbind(0)
    (a * 2 + b * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[2.0] * 3, [3.0] * 3])


def test_new_constructors_follow_the_tensor_like_pytorch() -> None:
    x = gnn.tensor(A, dtype="float64")
    z = x.new_zeros(2, 3)
    assert z.shape == (2, 3) and z.dtype == np.float64 and not z.numpy().any()
    assert x.new_zeros((4,)).shape == (4,)
    assert x.new_ones([2]).numpy().tolist() == [1.0, 1.0]
    assert x.new_empty(3, dtype=gnn.int64).dtype == np.int64
    f = x.new_full((2, 2), 7.5, requires_grad=True)
    assert f.requires_grad and f.dtype == np.float64 and f.numpy().tolist() == [[7.5, 7.5]] * 2
    n = x.new_tensor([1, 2, 3])
    assert n.dtype == np.float64 and n.device == x.device
    src = np.array([1.0, 2.0])
    m = x.new_tensor(src)
    src[0] = 9.0
    assert m.numpy().tolist() == [1.0, 2.0]  # a copy
    assert gnn.tensor([1], dtype="int32").new_tensor([2.7]).dtype == np.int32
    assert x.new_zeros(2, device=gnn.device("cpu")).device.type == "cpu"
    assert gnn.is_tensor(x) and not gnn.is_tensor(A)
    assert gnn.numel(x) == 6 and x.nelement() == 6 and x.element_size() == 8
    assert gnn.is_floating_point(x) and not gnn.tensor([1]).is_floating_point()


def test_format_of_one_element_tensors() -> None:
    loss = gnn.tensor(0.123456, dtype="float64")
    assert f"{loss:.3f}" == "0.123" and f"{loss:8.2e}" == "1.23e-01"
    assert f"{gnn.tensor([[2.5]]):.1f}" == "2.5"
    assert f"{gnn.tensor(3)}" == "3" and f"{gnn.tensor(3):>4d}" == "   3"
    assert f"{gnn.tensor([1.0, 2.0])}" == str(gnn.tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match="needs a one-element tensor"):
        f"{gnn.tensor([1.0, 2.0]):.2f}"


def test_format_matches_pytorch() -> None:
    torch = pytest.importorskip("torch")
    for v, spec in [(0.5, ".4f"), (123.456, "10.1f"), (1e-7, ".3e"), (-2.0, "+.2f")]:
        assert format(gnn.tensor(v, dtype="float64"), spec) == format(torch.tensor(v), spec)


def _check_frequencies(samples: np.ndarray, probs: np.ndarray) -> None:
    """Observed frequencies within 5 standard errors of the probabilities."""
    n = samples.size
    counts = np.bincount(samples.ravel(), minlength=probs.size) / n
    se = np.sqrt(probs * (1 - probs) / n) + 1e-12
    assert np.all(np.abs(counts - probs) <= 5 * se), (counts, probs)


def test_multinomial_with_replacement_draws_the_distribution() -> None:
    gnn.manual_seed(3)
    w = np.array([[0.2, 0.0, 1.0, 0.8], [0.0, 0.0, 0.0, 5.0], [1.0, 1.0, 1.0, 1.0]])
    s = gnn.multinomial(gnn.tensor(w, dtype="float64"), 20000, replacement=True)
    assert s.shape == (3, 20000) and s.dtype == np.int64
    for r in range(3):
        _check_frequencies(s.numpy()[r], w[r] / w[r].sum())
    one = gnn.tensor([0.0, 1.0, 3.0]).multinomial(4000, replacement=True)
    assert one.shape == (4000,)
    _check_frequencies(one.numpy(), np.array([0.0, 0.25, 0.75]))


def test_multinomial_without_replacement() -> None:
    gnn.manual_seed(4)
    w = np.array([0.1, 0.0, 0.3, 0.6])
    firsts, pairs = [], []
    for _ in range(3000):
        s = gnn.multinomial(gnn.tensor(w), 3).numpy()
        assert sorted(s) == [0, 2, 3]  # three distinct, never the zero-probability one
        firsts.append(s[0])
        pairs.append(tuple(s[:2]))
    _check_frequencies(np.array(firsts), w)
    # P(first = 2, second = 3) = 0.3 * 0.6 / 0.7
    share = sum(p == (2, 3) for p in pairs) / len(pairs)
    assert abs(share - 0.3 * 0.6 / 0.7) < 5 * np.sqrt(0.26 * 0.74 / 3000)
    batch = gnn.multinomial(gnn.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]]), 3)
    assert [sorted(r) for r in batch.tolist()] == [[0, 1, 2], [0, 1, 2]]


def test_multinomial_is_seeded() -> None:
    p = gnn.tensor([0.3, 0.3, 0.4])
    gnn.manual_seed(11)
    a = gnn.multinomial(p, 50, replacement=True).numpy()
    gnn.manual_seed(11)
    np.testing.assert_array_equal(a, gnn.multinomial(p, 50, replacement=True).numpy())


@pytest.mark.parametrize(
    ("probs", "n", "kwargs", "error", "match"),
    [
        ([0.5, -0.1], 1, {}, ValueError, "finite and non-negative"),
        ([0.5, float("nan")], 1, {}, ValueError, "finite and non-negative"),
        ([0.0, 0.0], 1, {}, ValueError, "sums to zero"),
        ([0.5, 0.5], 3, {}, ValueError, "from 2 categories"),
        ([0.5, 0.0, 0.5], 3, {}, ValueError, "only 2 non-zero"),
        ([0.5, 0.5], 0, {}, ValueError, "num_samples must be an integer >= 1"),
        ([[[0.5]]], 1, {}, ValueError, "1-D or 2-D"),
        ([0.5, 0.5], 1, {"generator": object()}, TypeError, "generator= is not supported"),
    ],
)
def test_multinomial_refuses_bad_input(
    probs: list, n: int, kwargs: dict, error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        gnn.multinomial(gnn.tensor(probs), n, **kwargs)


def test_multinomial_on_device(device: str) -> None:
    gnn.manual_seed(5)
    s = gnn.multinomial(gnn.tensor([[1.0, 0.0, 3.0]], device=device), 8000, replacement=True)
    assert s.device.type == device
    _check_frequencies(s.numpy()[0], np.array([0.25, 0.0, 0.75]))
    t = gnn.multinomial(gnn.tensor([1.0, 0.0, 3.0], device=device), 2)
    assert sorted(t.tolist()) == [0, 2]


def test_inference_mode_and_gpt_sampling_helpers() -> None:
    logits = gnn.tensor([[2.0, 1.0, 0.5, -1.0]], requires_grad=True)
    with gnn.inference_mode():
        v, _ = gnn.topk(logits, 2)
        masked = logits.clone()
        masked[masked < v[:, [-1]]] = -float("inf")
        probs = gnn.softmax(masked, dim=-1)
        assert not probs.requires_grad
        nxt = gnn.multinomial(probs, num_samples=1)
        assert nxt.shape == (1, 1) and nxt.item() in (0, 1)
        idx = gnn.cat((gnn.tensor([[5]]), nxt), dim=1)
        assert idx.shape == (1, 2)
        assert gnn.argmax(probs, dim=-1).item() == 0


def test_torch_level_conv_and_pool_names_match_pytorch() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    x, w, wt = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3)), \
        rng.standard_normal((3, 2, 2, 2))  # fmt: skip
    np.testing.assert_allclose(
        gnn.conv2d(gnn.tensor(x), gnn.tensor(w), None, 1, 1).numpy(),
        torch.conv2d(torch.tensor(x), torch.tensor(w), None, 1, 1).numpy(),
        rtol=1e-12,
        atol=1e-12,
    )
    np.testing.assert_allclose(
        gnn.conv_transpose2d(gnn.tensor(x), gnn.tensor(wt), stride=2).numpy(),
        torch.conv_transpose2d(torch.tensor(x), torch.tensor(wt), stride=2).numpy(),
        rtol=1e-12, atol=1e-12)  # fmt: skip
    np.testing.assert_array_equal(gnn.max_pool2d(gnn.tensor(x), 2).numpy(),
                                  torch.max_pool2d(torch.tensor(x), 2).numpy())  # fmt: skip
