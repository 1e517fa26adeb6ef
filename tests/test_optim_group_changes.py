"""Hyperparameters changed between steps reach the per-parameter path's next step.

A user or a scheduler may change a group's values between steps; these tests change them in the
ways they do and compare, bit for bit, the per-parameter path with the flat one (foreach), and
check that the change did change the result.
"""

from __future__ import annotations

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
