"""PyTorch keeps optimizer counters as 0-d tensors ("step", NAdam's "mu_product"); gnn keeps
Python numbers. A state dict converted from PyTorch (gnn.save(torch.load(...))) brings 0-d
arrays: this turns them into the numbers gnn's optimizers keep, before the usual checks."""

from __future__ import annotations

from typing import Any

from gnn.tensor import Tensor


def _number(value: Any, integer: bool) -> Any:
    if isinstance(value, Tensor):
        value = value.numpy()
    if getattr(value, "shape", None) != ():
        return value  # not a 0-d array: left for the usual checks to judge
    v = value.item()
    if integer and isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def pytorch_scalars(state_dict: Any, integers: tuple = ("step",), floats: tuple = ()) -> Any:
    """A shallow copy of state_dict whose per-parameter counters are Python numbers."""
    if not isinstance(state_dict, dict) or not isinstance(state_dict.get("state"), dict):
        return state_dict
    state = {}
    for idx, entry in state_dict["state"].items():
        if isinstance(entry, dict):
            entry = dict(entry)
            for k in integers:
                if k in entry:
                    entry[k] = _number(entry[k], True)
            for k in floats:
                if k in entry:
                    entry[k] = _number(entry[k], False)
        state[idx] = entry
    return {**state_dict, "state": state}
