"""F.embedding and nn.Embedding: lookups, accumulation of repeated ids, padding_idx, errors."""

import numpy as np
import pytest

import gnn
import gnn.functional as F
from gnn import nn
from gnn.testing import gradcheck

rng = np.random.default_rng(0)


def test_lookup_and_repeated_ids_accumulate():
    w = rng.standard_normal((6, 3))
    ids = np.array([[1, 4, 1], [1, 0, 5]])
    wt = gnn.tensor(w, requires_grad=True)
    out = F.embedding(gnn.tensor(ids), wt)
    np.testing.assert_array_equal(out.numpy(), w[ids])
    gy = rng.standard_normal((2, 3, 3))
    out.backward(gnn.tensor(gy))
    expected = np.zeros_like(w)
    for (i, j), k in np.ndenumerate(ids):  # written out: each output row adds into its id's row
        expected[k] += gy[i, j]
    np.testing.assert_allclose(wt.grad.numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_many_repeated_ids_accumulate(dtype):
    """Enough ids (hundreds, as in a language model's batch) for the sorted row sums."""
    w = rng.standard_normal((7, 5)).astype(dtype)
    ids = rng.integers(0, 7, (9, 40))  # 360 lookups of 7 rows
    wt = gnn.tensor(w, requires_grad=True)
    out = F.embedding(gnn.tensor(ids), wt)
    gy = rng.standard_normal((9, 40, 5)).astype(dtype)
    out.backward(gnn.tensor(gy))
    expected = np.zeros((7, 5))
    for (i, j), k in np.ndenumerate(ids):
        expected[k] += gy[i, j]
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(wt.grad.numpy(), expected, rtol=tol, atol=tol)


def test_index_add_of_rows_with_negative_and_repeated_indices():
    be = gnn.backend.get_backend("cpu")
    index = rng.integers(-6, 6, 300)  # -1 and 5 name the same row
    values = rng.standard_normal((300, 2, 3))
    target = rng.standard_normal((6, 2, 3))
    expected = target.copy()
    np.add.at(expected, index, values)
    be.index_add(target, index, values)
    np.testing.assert_allclose(target, expected, rtol=1e-12, atol=1e-12)


def test_padding_idx_gets_no_gradient():
    w = gnn.tensor(rng.standard_normal((5, 2)), requires_grad=True)
    ids = gnn.tensor(np.array([0, 2, 2, 4]))
    F.embedding(ids, w, padding_idx=2).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy()[:, 0], [1, 0, 0, 0, 1])
    w.grad = None
    F.embedding(ids, w, padding_idx=-1).sum().backward()  # -1 means the last row
    np.testing.assert_array_equal(w.grad.numpy()[:, 0], [1, 0, 2, 0, 0])


def test_gradcheck():
    ids = gnn.tensor(np.array([[3, 1], [1, 1], [0, 2]]))
    w = gnn.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    assert gradcheck(lambda w: F.embedding(ids, w), [w])
    # (padding_idx is left out: its row deliberately gets no gradient, unlike the numbers)


def test_errors():
    w = gnn.randn(4, 2)
    with pytest.raises(IndexError, match=r"embedding: id 4 is out of range.*4 rows.*0\.\.3"):
        F.embedding(gnn.tensor([0, 4]), w)
    with pytest.raises(IndexError, match="id -1"):
        F.embedding(gnn.tensor([-1, 2]), w)
    with pytest.raises(TypeError, match="integers"):
        F.embedding(gnn.tensor([0.0, 1.0]), w)
    with pytest.raises(ValueError, match="padding_idx 7"):
        nn.Embedding(4, 2, padding_idx=7)
    with pytest.raises(ValueError, match="num_embeddings must be a positive integer"):
        nn.Embedding(0, 2)


def test_module_init_and_state_dict():
    gnn.manual_seed(0)
    m = nn.Embedding(1000, 16, padding_idx=3)
    w = m.weight.numpy()
    assert list(m.state_dict()) == ["weight"]
    np.testing.assert_array_equal(w[3], np.zeros(16))
    others = np.delete(w, 3, axis=0)
    assert abs(others.mean()) < 0.02 and abs(others.std() - 1.0) < 0.02  # N(0, 1)
    out = m(gnn.tensor([[3, 5]]))
    assert out.shape == (1, 2, 16)
    np.testing.assert_array_equal(out.numpy()[0, 1], w[5])


def test_from_pretrained():
    table = rng.standard_normal((3, 2)).astype(np.float32)
    m = nn.Embedding.from_pretrained(gnn.tensor(table))
    assert not m.weight.requires_grad
    np.testing.assert_array_equal(m(gnn.tensor([2])).numpy()[0], table[2])
    assert nn.Embedding.from_pretrained(table, freeze=False).weight.requires_grad
