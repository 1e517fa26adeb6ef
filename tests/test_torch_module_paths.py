"""The module paths PyTorch scripts import from: gnn.nn.modules.*, gnn.nn.functional,
gnn.utils.data, and RNN.flatten_parameters()."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import gnn
import gnn.nn.modules as modules

SUBMODULES = [
    "activation", "batchnorm", "container", "conv", "dropout", "flatten", "linear", "loss",
    "module", "normalization", "pooling", "rnn", "sparse", "transformer",
]  # fmt: skip


@pytest.mark.parametrize("name", SUBMODULES)
def test_nn_modules_mirror_holds_gnn_nn_classes(name: str) -> None:
    mod = importlib.import_module(f"gnn.nn.modules.{name}")
    assert mod.__all__
    for cls in mod.__all__:
        obj = getattr(mod, cls)
        assert getattr(modules, cls) is obj
        if hasattr(gnn.nn, cls):
            assert getattr(gnn.nn, cls) is obj


@pytest.mark.parametrize("name", SUBMODULES)
def test_nn_modules_mirror_puts_classes_where_pytorch_does(name: str) -> None:
    torch = pytest.importorskip("torch")
    theirs = importlib.import_module(f"torch.nn.modules.{name}")
    ours = importlib.import_module(f"gnn.nn.modules.{name}")
    missing = [cls for cls in ours.__all__ if not hasattr(theirs, cls)]
    assert not missing, f"torch.nn.modules.{name} has no {missing}"
    del torch


def test_import_forms_scripts_use() -> None:
    import gnn.nn.functional as F
    from gnn.nn.modules.linear import Linear
    from gnn.nn.modules.module import Module
    from gnn.utils.data import DataLoader, Dataset

    assert F is gnn.functional and gnn.nn.functional is gnn.functional
    assert F.relu is gnn.functional.relu
    assert Linear is gnn.nn.Linear and Module is gnn.nn.Module
    assert gnn.utils.data is gnn.data
    assert DataLoader is gnn.data.DataLoader and Dataset is gnn.data.Dataset


@pytest.mark.parametrize("cls", ["LSTM", "GRU", "RNN"])
def test_flatten_parameters_changes_nothing(cls: str) -> None:
    gnn.manual_seed(0)
    rnn = getattr(gnn.nn, cls)(3, 4, num_layers=2, batch_first=True)
    x = gnn.randn(2, 5, 3)
    before = rnn(x)[0].numpy().copy()
    names = [n for n, _ in rnn.named_parameters()]
    assert rnn.flatten_parameters() is None
    np.testing.assert_array_equal(rnn(x)[0].numpy(), before)
    assert [n for n, _ in rnn.named_parameters()] == names
