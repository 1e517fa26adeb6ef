"""Scalar optimizer state in device memory on a GPU, so that a captured CUDA graph replays it.

A replayed step runs no Python: every host number the captured step used (a step count, NAdam's
mu_product, the bias corrections made from them) would stay what it was at capture. So on a GPU
an update that reads such a number takes it from device memory instead: the parameter's
`DeviceScalars` hold its copies there, the update advances them there (a replay does too), and
the step-dependent numbers are computed from them on the device. The flat path's kernels do the
same with their `DeviceClock` (gnn/backend/fused/optim.py). On the CPU the updates keep host
numbers, which are faster there.

The host state keeps PyTorch's format ("step" an int, "mu_product" a float): the loop still
counts "step" on the host, and `sync_host_state` (called by `Optimizer.state_dict`) reads the
device copies back: after replays, and for values only the device advances (NAdam's mu_product),
the host's copies lag behind. On a GPU every counting optimizer counts its steps on the device
too (one launch per parameter, or per flat buffer where its kernel does not count them itself),
so that state_dict() reports the true counts after a graphed run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from gnn.optim.optimizer import Optimizer


class DeviceScalars:
    """One parameter's scalar state in device memory: 0-d float64 arrays by state key.

    `known[key]` is the host value the device copy holds as far as the host knows; the host
    writes its own value only when that differs (a first use, a loaded state), never during a
    capture in a training loop, where the device's copy is ahead of the host's.
    """

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.arrays: dict[str, Any] = {}
        self.known: dict[str, Any] = {}

    def get(self, key: str, host: float) -> Any:
        """The device copy of the state value whose host value is `host`."""
        array = self.arrays.get(key)
        if array is None:
            array = self.arrays[key] = self.backend.xp.zeros((), dtype=np.float64)
        if self.known.get(key) != host:
            array[...] = host
            self.known[key] = host
        return array

    def step(self, step: int) -> Any:
        """Step number `step` (1 for the first) on the device: its count before, plus one (once
        per step: a second call for the same step returns the same count)."""
        if self.known.get("step") != step:
            self.get("step", step - 1)
            self.arrays["step"] += 1
            self.known["step"] = step
        return self.arrays["step"]


def in_dtype_of(x: Any, value: Any) -> Any:
    """A step-dependent scalar for arithmetic on array `x`: host numbers as they are, a device
    value cast to x's dtype (a float64 0-d array would make the whole expression float64)."""
    return value if isinstance(value, (int, float)) else value.astype(x.dtype, copy=False)


def sync_host_state(opt: Optimizer) -> None:
    """Write into `opt.state` what the device copies of its scalar state hold: the parameters'
    DeviceScalars and the step counts of the flat path's counting kernels (Adam's). One read per
    device; nothing to read, nothing done."""
    # A device copy is read only while the host still holds the value the device was last given
    # or advanced to: a host value changed since (steps taken after a move to the CPU, a loaded
    # state) is the truth instead.
    mirrors = [
        (opt.state[p], s, key)
        for p, s in opt._device_scalars.items()
        if p in opt.state
        for key in s.arrays
        if opt.state[p].get(key) == s.known.get(key)
    ]
    clocks = [
        ([opt.state[p] for p in part.params], part)
        for _, _, parts in opt.__dict__.get("_flat_parts", {}).values()
        for part in parts
        if part.clock.counted
        and all(opt.state.get(p, {}).get("step") == part.clock.host_steps for p in part.params)
    ]
    arrays = [(s.backend, s.arrays[key]) for _, s, key in mirrors]
    arrays += [(part.be, part.clock.steps[:1]) for _, part in clocks]
    values = iter(_read(arrays))
    for state, scalars, key in mirrors:
        value = next(values)
        state[key] = scalars.known[key] = int(value) if key == "step" else float(value)
    for states, part in clocks:
        step = int(next(values))
        for s in states:
            s["step"] = step
        part.clock.host_steps = step


def _read(arrays: list[tuple[Any, Any]]) -> list[Any]:
    """The values of one-element device arrays, given with their backends: one read per backend."""
    values: list[Any] = [None] * len(arrays)
    by_backend: dict[int, tuple[Any, list[int]]] = {}
    for i, (be, _) in enumerate(arrays):
        by_backend.setdefault(id(be), (be, []))[1].append(i)
    for be, index in by_backend.values():
        host = be.to_numpy(be.xp.concatenate([arrays[i][1].reshape(1) for i in index]))
        for i, value in zip(index, host.tolist()):
            values[i] = value
    return values
