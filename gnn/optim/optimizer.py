"""Optimizer base: parameter groups, zero_grad, state_dict / load_state_dict."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from gnn.tensor import Tensor


class Optimizer:
    """Holds param groups (dicts with "params" and hyperparameters) and per-parameter state."""

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.state: dict[int, dict[str, Any]] = {}  # id(param) -> state
        self.param_groups: list[dict[str, Any]] = []
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, group: dict[str, Any]) -> None:
        group = dict(group)
        params = group["params"]
        group["params"] = [params] if isinstance(params, Tensor) else list(params)
        for p in group["params"]:
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__}: params must be Tensors, got {type(p).__name__}")
            if not p.requires_grad:
                raise ValueError(f"{type(self).__name__}: a parameter of shape {p.shape} does not require grad")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in group["params"]):
            raise ValueError(f"{type(self).__name__}: a parameter appears in more than one group")
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        self._check_hyperparameters(group)
        self.param_groups.append(group)

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        lr = group.get("lr")
        if lr is None or not lr > 0:
            raise ValueError(f"{type(self).__name__}: lr must be > 0, got {lr!r}")
        wd = group.get("weight_decay", 0.0)
        if wd < 0:
            raise ValueError(f"{type(self).__name__}: weight_decay must be >= 0, got {wd}")

    def zero_grad(self, set_to_none: bool = True) -> None:
        for g in self.param_groups:
            for p in g["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.data[...] = 0

    def step(self) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """{"state": {index: {...}}, "param_groups": [...]} with parameters numbered as in PyTorch."""
        index: dict[int, int] = {}
        groups = []
        for g in self.param_groups:
            entry = {k: v for k, v in g.items() if k != "params"}
            entry["params"] = []
            for p in g["params"]:
                index.setdefault(id(p), len(index))
                entry["params"].append(index[id(p)])
            groups.append(entry)
        state = {}
        for g in self.param_groups:
            for p in g["params"]:
                if id(p) in self.state:
                    state[index[id(p)]] = {
                        k: (v.numpy().copy() if isinstance(v, Tensor) else copy.deepcopy(v))
                        for k, v in self.state[id(p)].items()
                    }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(
                f"load_state_dict: {len(groups)} param groups saved, optimizer has {len(self.param_groups)}"
            )
        params = []
        for saved, g in zip(groups, self.param_groups):
            if len(saved["params"]) != len(g["params"]):
                raise ValueError("load_state_dict: a param group has a different number of parameters")
            params.extend(zip(saved["params"], g["params"]))
            for k, v in saved.items():
                if k != "params":
                    g[k] = v
        self.state = {}
        for idx, p in params:
            saved_state = state_dict["state"].get(idx, state_dict["state"].get(str(idx)))
            if saved_state is None:
                continue
            self.state[id(p)] = {
                k: (Tensor._make(p._be.asarray(v), p._be, False) if hasattr(v, "shape") and getattr(v, "ndim", 0) > 0 else v)
                for k, v in saved_state.items()
            }

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(k for k in g if k != "params"):
                lines.append(f"    {k}: {g[k]}")
        return "\n".join(lines) + "\n)"
