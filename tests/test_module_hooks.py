"""Module.register_forward_pre_hook / register_forward_hook: PyTorch's shapes and semantics."""

import copy

import numpy as np
import pytest

import gnn
from gnn import nn


def test_forward_hook_sees_module_args_output_and_can_replace_output():
    layer = nn.Linear(3, 2)
    seen = []
    handle = layer.register_forward_hook(lambda m, args, out: seen.append((m, args, out)))
    x = gnn.randn(4, 3)
    out = layer(x)
    ((m, args, hooked_out),) = seen
    assert m is layer and args[0] is x and hooked_out is out
    handle.remove()
    doubled = layer.register_forward_hook(lambda m, args, out: out * 2)
    np.testing.assert_allclose(layer(x).numpy(), 2 * layer.forward(x).numpy(), rtol=1e-6)
    doubled.remove()
    np.testing.assert_allclose(layer(x).numpy(), layer.forward(x).numpy(), rtol=1e-6)
    assert len(seen) == 1  # removed: not called again


def test_pre_hook_replaces_args_single_value_or_tuple():
    layer = nn.Identity()
    h1 = layer.register_forward_pre_hook(lambda m, args: args[0] + 1)  # one value
    assert float(layer(gnn.tensor(1.0))) == 2.0
    h2 = layer.register_forward_pre_hook(lambda m, args: (args[0] * 10,))  # a tuple, after h1
    assert float(layer(gnn.tensor(1.0))) == 20.0
    h1.remove()
    h2.remove()
    assert float(layer(gnn.tensor(1.0))) == 1.0


def test_hooks_run_in_registration_order_and_remove_is_idempotent():
    layer, order = nn.ReLU(), []
    handles = [layer.register_forward_hook(lambda m, a, o, i=i: order.append(i)) for i in range(3)]
    handles[1].remove()
    handles[1].remove()  # again: nothing happens
    layer(gnn.zeros(2))
    assert order == [0, 2]
    for h in handles:
        h.remove()
    assert "_hooks" not in layer.__dict__  # back to the hook-free path


def test_hooks_on_children_see_every_call_and_a_handle_works_as_a_context():
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2))
    shapes = {}
    with model[2].register_forward_hook(lambda m, a, o: shapes.setdefault("out", o.shape)):
        model(gnn.randn(3, 4))
    assert shapes == {"out": (3, 2)}
    model(gnn.randn(6, 4))
    assert shapes == {"out": (3, 2)}  # removed when the block ended


def test_a_deep_copy_keeps_its_hooks():
    layer, calls = nn.Identity(), []
    handle = layer.register_forward_hook(lambda m, a, o: calls.append(m))
    twin = copy.deepcopy(layer)
    handle.remove()  # the original's hook goes; the copy's stays
    layer(gnn.zeros(1))
    twin(gnn.zeros(1))
    assert len(calls) == 1 and calls[0] is twin


def test_a_hook_must_be_callable():
    with pytest.raises(TypeError, match="callable"):
        nn.ReLU().register_forward_hook("not a function")
