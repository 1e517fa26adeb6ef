"""Shape and selection ops on 0-d tensors, which NumPy has no axis 0 for (PyTorch takes dim 0
or -1 there), and the join ops' shape checks."""

from __future__ import annotations

import numpy as np
import pytest

import gnn


def test_squeeze_of_a_0d_tensor_along_dim_0_or_minus_1_is_the_tensor() -> None:
    x = gnn.tensor(3.0, requires_grad=True)
    for dim in (0, -1):
        y = x.squeeze(dim)
        assert y.shape == () and float(y) == 3.0
    with pytest.raises(IndexError, match="squeeze: dim 1 is out of range"):
        x.squeeze(1)


def test_flatten_of_a_0d_tensor_is_one_element_and_checks_its_dims() -> None:
    x = gnn.tensor(3.0, requires_grad=True)
    y = x.flatten()
    assert y.shape == (1,)
    y.sum().backward()
    assert float(x.grad) == 1.0
    with pytest.raises(IndexError, match="flatten: dim 2 is out of range"):
        x.flatten(2)


@pytest.mark.parametrize("descending", [False, True])
def test_sort_of_a_0d_tensor_gives_its_value_and_index_0(descending: bool) -> None:
    x = gnn.tensor(3.0, requires_grad=True)
    values, indices = gnn.sort(x, descending=descending)
    assert values.shape == () and float(values) == 3.0
    assert indices.shape == () and indices.dtype == np.int64 and int(indices) == 0
    values.backward()
    assert float(x.grad) == 1.0


def test_sort_descending_along_a_dim_carries_the_gradient_back() -> None:
    x = gnn.tensor([[3.0, 1.0, 2.0], [0.0, 5.0, 4.0]], requires_grad=True)
    values, indices = gnn.sort(x, 1, descending=True)
    np.testing.assert_array_equal(values.numpy(), [[3, 2, 1], [5, 4, 0]])
    np.testing.assert_array_equal(indices.numpy(), [[0, 2, 1], [1, 2, 0]])
    (values * gnn.tensor([1.0, 2.0, 3.0])).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[1, 3, 2], [3, 1, 2]])


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "int64"])
def test_sort_is_stable_in_both_directions(descending: bool, dtype: str) -> None:
    # As torch.sort(stable=True): equal values keep their index order, descending too.
    rows = [[2, 1, 2, 0, 1, 2], [5, 5, 5, 5, 5, 5], [0, 3, 3, 1, 0, 3]]
    sign = -1 if descending else 1
    want = [sorted(range(len(r)), key=lambda i, r=r: sign * r[i]) for r in rows]
    x = gnn.tensor(np.array(rows, dtype=dtype))
    values, indices = gnn.sort(x, 1, descending=descending)
    np.testing.assert_array_equal(indices.numpy(), want)
    np.testing.assert_array_equal(
        values.numpy(), np.take_along_axis(np.array(rows), np.array(want), 1)
    )
    np.testing.assert_array_equal(x.argsort(1, descending=descending).numpy(), want)
    np.testing.assert_array_equal(gnn.sort(x.T, 0, descending=descending)[1].numpy().T, want)


def test_sort_descending_puts_nan_first_as_the_largest() -> None:
    x = gnn.tensor([1.0, float("nan"), 3.0, 1.0])
    np.testing.assert_array_equal(gnn.argsort(x, descending=True).numpy(), [1, 2, 0, 3])
    np.testing.assert_array_equal(gnn.argsort(x).numpy(), [0, 3, 2, 1])


def test_cat_and_stack_name_what_must_match() -> None:
    a, b = gnn.ones(2, 3), gnn.ones(3, 3)
    with pytest.raises(ValueError, match=r"stack: shapes must match, got \(2, 3\), \(3, 3\)"):
        gnn.stack([a, b])
    with pytest.raises(ValueError, match=r"cat: shapes must match except in dim 1, got"):
        gnn.cat([a, b], 1)
    with pytest.raises(ValueError, match="cat: shapes must match except in dim 0"):
        gnn.cat([a, gnn.ones(3)])
    assert gnn.cat([a, b]).shape == (5, 3)
    assert gnn.stack([a, a], -1).shape == (2, 3, 2)
    with pytest.raises(TypeError, match="stack: expected Tensors, got int"):
        gnn.stack([a, 3])
    with pytest.raises(ValueError, match="cat: expected a non-empty sequence"):
        gnn.cat([])
