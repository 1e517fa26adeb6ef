"""Optimizer base: parameter groups, hyperparameter checks, the step loop, zero_grad, state dicts.

The base class owns the loop; an optimizer writes only its rule. step() runs, per group:

    params, grads, states = the parameters with a gradient, their gradients (raw arrays, already
                            negated when group["maximize"]) and their state dicts (created on
                            first use by init_state(), "step" counted when the optimizer counts)
    self._update_group(group, params, grads, states)

and the default `_update_group` calls `update(param, grad, state, group)` once per parameter (while
a class keeps that default, the loop calls `update` as it goes, without building the lists).
`update` is the one method a new optimizer must write: it changes `param.array` and the arrays in
`state` in place through the parameter's array namespace (`param.backend.xp`). Every scalar it
needs is a Python number computed on the host, so a step never waits on the GPU, except those
made from the step count (or from scalar state such as NAdam's mu_product): on a GPU these come
from `step_count` / `scalars_on_device`, device copies a captured CUDA graph advances at each
replay (gnn/optim/_device_scalars.py). Adam, AdamW, SGD and RMSprop write their rules once, in
gnn/backend/fused/optim.py, as the reference of their kernels.

`_update_group` is the seam for a fused multi-tensor update: an optimizer (or a mixin) whose
group lives in one flat buffer overrides it to update every parameter of the group at once and
never calls `update`; the loop, state creation, maximize and step counting stay here.

The flat path (gnn/optim/_flat.py) is the other way there, for an optimizer whose `update` is
elementwise with state shaped like the parameter (`supports_flat = True`: Adam, AdamW, SGD,
RMSprop): with `foreach=True` or `fused=True`, or by default on CUDA, a group's parameters, their
gradients and state live in flat buffers (the parameters' arrays and the state are views into
them) and `update_flat` is called once per buffer, on Tensors over the whole of it: on CUDA one
kernel launch (kernels/optim.cu) that reads lr and the step count from device memory.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from gnn.backend.fused.optim import DeviceClock
from gnn.config import enable_grad, no_grad
from gnn.optim._device_scalars import DeviceScalars, sync_host_state
from gnn.optim._flat import flat_step, wants_flat
from gnn.tensor import Tensor


def check_range(
    who: str,
    name: str,
    value: Any,
    low: float,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = True,
) -> None:
    """Raise ValueError naming `who`, the argument and its valid range when value is outside it."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{who}: {name} must be a number, got {value!r}") from None
    ok = not math.isnan(v) and (v > low if low_open else v >= low)
    if high is None:  # "[low, inf)": infinity itself is out (lr=inf turns every weight to NaN)
        ok = ok and math.isfinite(v)
    else:
        ok = ok and (v < high if high_open else v <= high)
    if not ok:
        left = "(" if low_open else "["
        right = "inf)" if high is None else (f"{high:g})" if high_open else f"{high:g}]")
        raise ValueError(f"{who}: {name} must be in {left}{low:g}, {right}, got {value!r}")


#: Lists that every Optimizer.step appends its optimizer to. GraphedStep (gnn/train/cuda_graph.py)
#: puts one here while it captures, to learn which optimizers its step runs and watch their lr.
step_watchers: list[list[Optimizer]] = []


class Optimizer:
    """Holds param groups (dicts with "params" and hyperparameters) and per-parameter state.

    `state` maps each parameter (the Tensor itself, hashed by identity) to a dict of its state.
    """

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.state: dict[Tensor, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        self._device_scalars: dict[Tensor, DeviceScalars] = {}  # on a GPU, see scalars_on_device
        if isinstance(params, Tensor):
            raise TypeError(
                f"{type(self).__name__}: params must be an iterable of Tensors or of dicts, "
                "got a single Tensor (wrap it in a list)"
            )
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, group: dict[str, Any]) -> None:
        """Add a group of parameters with its own hyperparameters (defaults fill the rest)."""
        who = type(self).__name__
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"{who}: a param group must be a dict with a 'params' entry")
        group = dict(group)
        params = group["params"]
        group["params"] = [params] if isinstance(params, Tensor) else list(params)
        for p in group["params"]:
            if not isinstance(p, Tensor):
                raise TypeError(f"{who}: params must be Tensors, got {type(p).__name__}")
            if not p.requires_grad:
                raise ValueError(f"{who}: a parameter of shape {p.shape} does not require grad")
        ids = [id(p) for p in group["params"]]
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if len(set(ids)) != len(ids) or any(i in seen for i in ids):
            raise ValueError(f"{who}: a parameter appears more than once (in one or more groups)")
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        self._check_hyperparameters(group)
        self.param_groups.append(group)

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        """Check a group's values; subclasses add their own and call this."""
        who = type(self).__name__
        check_range(who, "lr", group.get("lr"), 0.0, None, low_open=True)
        check_range(who, "weight_decay", group.get("weight_decay", 0.0), 0.0)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every parameter's gradient (or fill it with zeros when set_to_none=False)."""
        for g in self.param_groups:
            for p in g["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.array[...] = 0

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; returns closure() when one is given."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        self._follow_parameters()
        self._step()
        for stepped in step_watchers:
            stepped.append(self)
        return loss

    def lr_to_device(self) -> bool:
        """Write each group's lr into the device memory its kernels read it from; True when every
        update of the last step read lr there (the flat path's kernels), so that the replays of
        a captured step follow a new lr. False: some update took lr as a host number."""
        cache = self.__dict__.get("_flat_parts", {})
        if any(id(g) not in cache for g in self.param_groups):
            return False  # a group on the per-parameter path
        parts = [(g, part) for g in self.param_groups for part in cache[id(g)][2]]
        if not all(part.clock.read_lr for _, part in parts):
            return False  # a part without a kernel (float64, states that do not line up)
        for group, part in parts:
            part.clock.set(part.be.xp, float(group["lr"]))
        return True

    def _follow_parameters(self) -> None:
        """Move state arrays to the device and float dtype of their parameter, if it changed.

        A model moved with `model.to(...)` keeps its Parameter objects, so the optimizer still
        holds them; their state (momentum, Adam moments) follows here, and training goes on,
        from the counters the old device kept (true after CUDA graph replays, see state_dict).
        """
        synced = False
        for p, entry in self.state.items():
            be, dtype = p.backend, p.array.dtype
            for v in entry.values():
                # Identities only (this runs every step for every state entry); a dtype that is
                # equal but another object gets the exact test in _follow_entry.
                if isinstance(v, Tensor) and (v.array.dtype is not dtype or v.backend is not be):
                    synced = self._follow_entry(p, entry, synced)
                    break

    def _follow_entry(self, p: Tensor, entry: dict[str, Any], synced: bool) -> bool:
        """Move `entry`'s arrays to `p`'s device and float dtype where they differ; `synced`: the
        host state was read back already this step. Returns whether it has been now."""
        be, dtype = p.backend, p.array.dtype
        for k, v in entry.items():
            if not isinstance(v, Tensor):
                continue
            moved = v.backend is not be
            cast = v.array.dtype != dtype and v.array.dtype.kind == "f"
            if moved or cast:
                if moved and not synced:
                    sync_host_state(self)
                    synced = True
                data = be.asarray(v.backend.to_numpy(v.array)) if moved else v.array
                entry[k] = Tensor.wrap(data.astype(dtype, copy=False), be)
        return synced

    # ---- the update loop ---------------------------------------------------------------------

    #: Whether each parameter's state holds a "step" counter that the loop increments.
    counts_steps = True

    def init_state(self, param: Tensor, group: dict[str, Any]) -> dict[str, Any] | None:
        """A parameter's state before its first update; None keeps no state for it."""
        return {"step": 0} if self.counts_steps else None

    def update(
        self, param: Tensor, grad: Any, state: dict[str, Any] | None, group: dict[str, Any]
    ) -> None:
        """Update `param.array` (and `state`) in place from the raw gradient array `grad`."""
        raise NotImplementedError(f"{type(self).__name__} does not define update()")

    def update_flat(
        self,
        param: Tensor,
        grad: Any,
        state: dict[str, Any] | None,
        group: dict[str, Any],
        clock: DeviceClock,
    ) -> None:
        """The flat path's update of a whole flat buffer: `grad` is not yet negated for maximize,
        and `clock` holds the buffer's lr and step count on the device for a fused kernel. This
        default negates and calls `update`; Adam, SGD and RMSprop launch one kernel instead."""
        if group.get("maximize", False):
            grad = param.backend.xp.negative(grad)
        self.update(param, grad, state, group)

    def _update_group(
        self,
        group: dict[str, Any],
        params: list[Tensor],
        grads: list[Any],
        states: list[dict[str, Any] | None],
    ) -> None:
        """Update every parameter of one group; override for a fused multi-tensor update."""
        update = self.update
        for p, grad, state in zip(params, grads, states):
            update(p, grad, state, group)

    def scalars_on_device(self, param: Tensor) -> DeviceScalars | None:
        """On a GPU, the device copies of `param`'s scalar state, which the update reads and
        advances instead of host numbers (so CUDA graphs replay it); None on the CPU."""
        return self._scalars(param) if param.backend.name == "cuda" else None

    def step_count(self, param: Tensor, step: int) -> Any:
        """The number of the step the update of `param` makes (`step`, its state's): that host int
        on the CPU, its device copy (advanced on the device, once per step) on a GPU."""
        return self._scalars(param).step(step) if param.backend.name == "cuda" else step

    def _scalars(self, param: Tensor) -> DeviceScalars:
        scalars = self._device_scalars.get(param)
        if scalars is None or scalars.backend is not param.backend:
            scalars = self._device_scalars[param] = DeviceScalars(param.backend)
        return scalars

    @staticmethod
    def zeros_state(param: Tensor) -> Tensor:
        """A state Tensor of zeros beside `param` (same backend, shape and dtype)."""
        return Tensor.wrap(param.backend.xp.zeros_like(param.array), param.backend)

    #: Whether `update` may be called on whole flat buffers (an elementwise rule whose state is
    #: arrays shaped like the parameter): such optimizers take foreach/fused (gnn/optim/_flat.py).
    supports_flat = False

    @no_grad()  # the decorator costs less per call than a with block
    def _step(self) -> None:
        """Run each group's update over its parameters that have a gradient."""
        for group in self.param_groups:
            if self.supports_flat and wants_flat(self, group):
                flat_step(self, group)
            else:
                self._update_params(group, group["params"])

    def _update_params(self, group: dict[str, Any], group_params: list[Tensor]) -> None:
        """The per-parameter path: update each of `group_params` that has a gradient."""
        all_state, counts = self.state, self.counts_steps
        # Unless a subclass fuses the group, update each parameter as the loop reaches it: the
        # lists _update_group takes would cost the hot path three appends per parameter.
        fused = type(self)._update_group is not Optimizer._update_group
        update = self.update
        params, grads, states = [], [], []
        maximize = group.get("maximize", False)
        # On a GPU the step counts are kept on the device too (see step_count): true after replays
        count_on_device = counts and bool(group_params) and group_params[0].backend.name == "cuda"
        for p in group_params:
            g = p.grad
            if g is None:
                continue
            grad = g.array
            if maximize:
                grad = p.backend.xp.negative(grad)
            state = all_state.get(p)
            if state is None:
                state = self.init_state(p, group)
                if state is not None:
                    all_state[p] = state
            if counts:
                if state is None:  # a subclass's init_state kept no state, yet asks for a count
                    raise TypeError(
                        f"{type(self).__name__}: counts_steps is True but init_state returned None"
                    )
                state["step"] += 1
                if count_on_device:
                    self.step_count(p, state["step"])
            if fused:
                params.append(p)
                grads.append(grad)
                states.append(state)
            else:
                update(p, grad, state, group)
        if params:
            self._update_group(group, params, grads, states)

    # ---- state dicts ---------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """{"state": {index: {...}}, "param_groups": [...]}, parameters numbered as in PyTorch.

        Array state is returned as Tensors that share memory with the optimizer (as PyTorch does);
        counters such as "step" are Python numbers, read from their device copies where a GPU
        keeps them (after CUDA graph replays only the device has the true counts).
        """
        sync_host_state(self)
        index: dict[int, int] = {}
        groups = []
        for g in self.param_groups:
            entry = {k: copy.deepcopy(v) for k, v in g.items() if k != "params"}
            entry["params"] = []
            for p in g["params"]:
                index.setdefault(id(p), len(index))
                entry["params"].append(index[id(p)])
            groups.append(entry)
        state = {}
        for g in self.param_groups:
            for p in g["params"]:
                if p in self.state:
                    state[index[id(p)]] = {
                        k: (v.detach() if isinstance(v, Tensor) else copy.deepcopy(v))
                        for k, v in self.state[p].items()
                    }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyperparameters and state saved by state_dict() (copies; any device).

        Everything is checked first (group sizes, hyperparameter ranges and types, each state
        entry's keys, counters, shapes and dtypes): a state that loads does not fail at step().
        """
        new_groups, new_state = self.checked_state(state_dict)
        # Everything checked: now change the optimizer (the group dicts stay the same objects,
        # as schedulers hold them).
        for g, new in zip(self.param_groups, new_groups):
            g.update(new)
        self.state = new_state
        self._device_scalars = {}  # the loaded numbers are the truth now, on every device
        for _, _, parts in self.__dict__.get("_flat_parts", {}).values():
            for part in parts:
                part.clock.host_steps, part.clock.counted = None, False

    def _required_state(self, group: dict[str, Any]) -> tuple[str, ...]:
        """The state keys step() reads for a parameter of this group once it has state."""
        return ()

    def checked_state(
        self, state_dict: Any
    ) -> tuple[list[dict[str, Any]], dict[Tensor, dict[str, Any]]]:
        """(new param groups, new state) from a saved state dict, all checked; changes nothing."""
        who = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, dict) or not isinstance(
            state_dict.get("param_groups"), (list, tuple)
        ):
            raise ValueError(f"{who}: expected a dict with a 'param_groups' list")
        groups = state_dict["param_groups"]
        if not all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups):
            raise ValueError(f"{who}: every saved param group must be a dict with a 'params' list")
        if len(groups) != len(self.param_groups):
            raise ValueError(
                f"{who}: {len(groups)} param groups saved, the optimizer has "
                f"{len(self.param_groups)}"
            )
        pairs: list[tuple[Any, Tensor]] = []  # (saved index, parameter)
        for i, (saved, g) in enumerate(zip(groups, self.param_groups)):
            if len(saved["params"]) != len(g["params"]):
                raise ValueError(
                    f"{who}: param group {i} has {len(saved['params'])} parameters saved, "
                    f"{len(g['params'])} in the optimizer"
                )
            pairs.extend(zip(saved["params"], g["params"]))
        saved_state = state_dict.get("state", {})
        if not isinstance(saved_state, dict):
            raise ValueError(f"{who}: 'state' must be a dict, got {type(saved_state).__name__}")
        new_groups = []
        group_of: dict[int, dict[str, Any]] = {}
        for i, (saved, g) in enumerate(zip(groups, self.param_groups)):
            new = dict(g)
            for k, v in saved.items():
                if k == "params":
                    continue
                own = g.get(k, self.defaults.get(k))
                # JSON turns tuples (betas) into lists: keep the type the optimizer uses.
                if isinstance(v, list) and isinstance(own, tuple):
                    v = tuple(v)
                if isinstance(own, bool) and not isinstance(v, bool):
                    raise ValueError(f"{who}: saved param group {i}: {k} must be true or false")
                new[k] = copy.deepcopy(v)
            try:  # a saved lr <= 0 fails as it would at construction
                self._check_hyperparameters(new)
            except (TypeError, ValueError, KeyError) as e:
                raise type(e)(f"{who}: saved param group {i}: {e}") from None
            new_groups.append(new)
            for p in g["params"]:
                group_of[id(p)] = new
        new_state: dict[Tensor, dict[str, Any]] = {}
        for idx, p in pairs:
            entry = saved_state.get(idx, saved_state.get(str(idx)))
            if entry is None:
                continue
            if not isinstance(entry, dict):
                raise ValueError(f"{who}: the state of parameter {idx} must be a dict")
            lacks = [k for k in self._required_state(group_of[id(p)]) if k not in entry]
            if lacks:
                raise ValueError(
                    f"{who}: the state of parameter {idx} lacks {', '.join(map(repr, lacks))}"
                )
            new_state[p] = {k: _state_value(v, p, who, k) for k, v in entry.items()}
        return new_groups, new_state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(k for k in g if k != "params"):
                lines.append(f"    {k}: {g[k]}")
        return "\n".join(lines) + "\n)"


def _state_value(value: Any, p: Tensor, who: str, key: str) -> Any:
    """A saved state entry as the optimizer keeps it: arrays become Tensors beside `p`."""
    if isinstance(value, Tensor):
        value = value.numpy() if value.backend is not p.backend else value.array
    if not hasattr(value, "shape") or not hasattr(value, "dtype"):
        if key == "step" and (
            not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0
        ):
            raise ValueError(f"{who}: state 'step' must be an integer >= 0, got {value!r}")
        return copy.deepcopy(value)  # a counter such as "step"
    if key == "step" and value.shape == ():  # a 0-d array from a file: the counter, as a number
        if np.dtype(value.dtype).kind not in "iu" or int(value) < 0:
            raise ValueError(f"{who}: state 'step' must be an integer >= 0, got {value!r}")
        return int(value)
    if np.dtype(value.dtype).kind != "f":
        raise ValueError(
            f"{who}: state {key!r} has dtype {value.dtype}; optimizer state must be floating point"
        )
    if value.shape != p.shape:
        raise ValueError(
            f"{who}: state {key!r} has shape {tuple(value.shape)}, parameter {p.shape}"
        )
    dtype = p.dtype if np.dtype(value.dtype).kind == "f" else value.dtype
    data = p.backend.asarray(value, dtype=dtype)
    if data is value:  # the optimizer updates its state in place: never share the caller's array
        data = data.copy()
    return Tensor.wrap(data, p.backend)


class FusedRule(Optimizer):
    """An optimizer whose rule is one fused unit of gnn/backend/fused/optim.py: `_fused` runs it
    on one parameter (clock None: the reference, on any backend) or on a whole flat buffer (the
    kernel on CUDA, with the buffer's device clock)."""

    def update(
        self, param: Tensor, grad: Any, state: dict[str, Any] | None, group: dict[str, Any]
    ) -> None:
        self._fused(param, grad, state, group, None, maximize=False)  # grad already negated

    def update_flat(
        self,
        param: Tensor,
        grad: Any,
        state: dict[str, Any] | None,
        group: dict[str, Any],
        clock: DeviceClock,
    ) -> None:
        self._fused(param, grad, state, group, clock, group.get("maximize", False))

    def _fused(
        self,
        param: Tensor,
        grad: Any,
        state: Any,
        group: dict[str, Any],
        clock: DeviceClock | None,
        maximize: bool,
    ) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not define _fused()")
