"""argmax/argmin and the indices of max/min: arrays of the tensor's backend, 0-d inputs included.

NumPy's argmax of a 0-d array (or over all elements) is a NumPy scalar, not an array; the ops
wrap those so that a Tensor always holds an array (gnn/ops/reduce.py, _arg).
"""

from __future__ import annotations

import numpy as np
import pytest

import gnn


@pytest.mark.parametrize("dim", [None, 0, -1])
@pytest.mark.parametrize("op", ["argmax", "argmin"])
def test_index_of_a_0d_tensor_is_a_0d_array(op: str, dim: int | None) -> None:
    out = getattr(gnn, op)(gnn.tensor(3.0), dim)
    assert isinstance(out.array, np.ndarray), type(out.array)
    assert out.shape == () and out.item() == 0 and not out.requires_grad


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("op", ["max", "min"])
def test_extreme_of_a_0d_tensor_along_dim_0(op: str, keepdim: bool) -> None:
    x = gnn.tensor(3.0, requires_grad=True)
    values, indices = getattr(gnn, op)(x, 0, keepdim=keepdim)
    assert values.shape == () and values.item() == 3.0
    assert isinstance(indices.array, np.ndarray) and indices.item() == 0
    values.backward()
    assert x.grad is not None and x.grad.item() == 1.0


def test_index_over_all_elements_ignores_keepdim_as_before() -> None:
    x = gnn.tensor([[1.0, 5.0], [7.0, 2.0]])
    assert gnn.argmax(x).item() == 2 and gnn.argmin(x, keepdim=True).item() == 0
    assert gnn.argmax(x, 1, keepdim=True).tolist() == [[1], [0]]
