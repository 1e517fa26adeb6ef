"""Hyperparameters changed between steps reach the per-parameter path's next step.

FusedRule keeps each group's spec, lr and arrays object from one step to the next while the
group's values stay the same (gnn/optim/optimizer.py, `_group_update`); these tests change them
in every way a user or a scheduler does and compare, bit for bit, with the flat path, which makes
its spec afresh at every step.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import gnn
from gnn import nn, optim

Change = Callable[[dict[str, Any]], None]


def _set(**values: Any) -> Change:
    return lambda group: group.update(values)


CASES: list[tuple[str, dict[str, Any], Change]] = [
    ("SGD", {"lr": 0.05}, _set(lr=0.01)),
    ("SGD", {"lr": 0.05}, _set(momentum=0.9)),  # a momentum buffer from the next step on
    ("SGD", {"lr": 0.05, "momentum": 0.9}, _set(nesterov=True)),
    ("SGD", {"lr": 0.05, "momentum": 0.9}, _set(dampening=0.5, weight_decay=0.01)),
    ("SGD", {"lr": 0.05, "momentum": 0.9}, _set(maximize=True)),
    ("Adam", {}, _set(lr=3e-3)),
    ("Adam", {}, _set(betas=(0.8, 0.99))),
    ("Adam", {}, _set(eps=1e-3, weight_decay=0.1)),
    ("AdamW", {}, _set(weight_decay=0.3)),
    ("RMSprop", {}, _set(alpha=0.9)),
    ("RMSprop", {"momentum": 0.9}, _set(centered=True, momentum=0.5, lr=1e-3)),
]


def _params(seed: int) -> list[nn.Parameter]:
    rng = np.random.default_rng(seed)
    return [nn.Parameter(gnn.tensor(rng.standard_normal(s))) for s in [(4, 3), (3,), (5,)]]


def _steps(name: str, kwargs: dict[str, Any], change: Change, foreach: bool) -> list[np.ndarray]:
    params = _params(0)
    opt = getattr(optim, name)(params, foreach=foreach, **kwargs)
    rng = np.random.default_rng(1)
    for step in range(4):
        if step == 2:
            group = opt.param_groups[0]
            change(group)
            if name == "RMSprop":  # its init_state makes the buffers: add those a change needs
                for p in params:
                    if group["momentum"]:
                        opt.state[p].setdefault("momentum_buffer", opt.zeros_state(p))
                    if group["centered"]:
                        opt.state[p].setdefault("grad_avg", opt.zeros_state(p))
        for p in params:
            p.grad = gnn.tensor(rng.standard_normal(p.shape))
        opt.step()
    return [p.numpy() for p in params]


@pytest.mark.parametrize("name,kwargs,change", CASES)
def test_a_change_between_steps_reaches_the_next_step(
    name: str, kwargs: dict[str, Any], change: Change
) -> None:
    per_parameter = _steps(name, kwargs, change, foreach=False)
    flat = _steps(name, kwargs, change, foreach=True)
    unchanged = _steps(name, kwargs, lambda group: None, foreach=False)
    for a, b, c in zip(per_parameter, flat, unchanged):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)  # the change did change the result


def test_a_new_lr_of_equal_value_and_a_loaded_state_are_followed() -> None:
    params = _params(0)
    opt = optim.Adam(params, lr=1e-3)
    group = opt.param_groups[0]
    for p in params:
        p.grad = gnn.ones(p.shape, dtype=p.dtype)
    opt.step()
    kept = opt._group_update(group)
    assert opt._group_update(group) is kept  # nothing changed: the same update
    group["lr"] = float("1e-3")  # another float object of the same value: made again
    assert opt._group_update(group) is not kept
    saved = opt.state_dict()
    saved["param_groups"][0]["betas"] = (0.5, 0.5)
    opt.load_state_dict(saved)
    assert opt._group_update(group).args[0].beta1 == 0.5


@pytest.mark.parametrize("name", ["SGD", "Adam", "RMSprop"])
def test_the_kept_arrays_do_not_keep_a_gradient(name: str) -> None:
    params = _params(0)
    opt = getattr(optim, name)(params, lr=1e-3)
    for p in params:
        p.grad = gnn.ones(p.shape, dtype=p.dtype)
    last = weakref.ref(params[-1].grad.array)
    opt.step()
    opt.zero_grad()
    gc.collect()
    assert last() is None
