"""copy.deepcopy and pickle of tensors and modules: independent copies on the same backend."""

from __future__ import annotations

import copy
import pickle

import numpy as np

import gnn
from gnn import nn


def test_deepcopy_of_a_model_has_equal_but_independent_parameters():
    gnn.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    clone = copy.deepcopy(model)
    for (name, p), (name2, q) in zip(model.state_dict().items(), clone.state_dict().items()):
        assert name == name2
        assert p is not q
        np.testing.assert_array_equal(p.numpy(), q.numpy())
    with gnn.no_grad():
        clone[0].weight.fill_(0.0)
    assert np.abs(model[0].weight.numpy()).sum() > 0
    assert clone[0].weight._be is model[0].weight._be  # the backend is shared, not copied


def test_pickle_round_trip_of_a_tensor_keeps_values_dtype_and_backend():
    x = gnn.tensor([[1.5, -2.0], [0.25, 4.0]], dtype="float64")
    y = pickle.loads(pickle.dumps(x))
    assert y.dtype == x.dtype and y.shape == x.shape
    np.testing.assert_array_equal(y.numpy(), x.numpy())
    assert y._be is x._be
