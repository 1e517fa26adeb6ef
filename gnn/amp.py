"""Mixed precision: `autocast` (which ops run in 16 bits) and `GradScaler` (loss scaling).

    with gnn.autocast("cpu", dtype=gnn.bfloat16):      # or ("cuda", gnn.float16)
        loss = loss_fn(model(x), y)
    scaler.scale(loss).backward()
    scaler.unscale_(opt)                                # before clipping
    gnn.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    scaler.step(opt)                                    # skipped when a gradient is inf/NaN
    scaler.update()

The op policy (gnn/ops/autocast.py) is PyTorch's: matmul, linear, conv and attention in the low
dtype; softmax, reductions, norms and losses in float32. Parameters stay float32 (the master
weights) and so does optimizer math. float16 needs a GradScaler (its range ends at 65504 and
small gradients underflow); bfloat16 has float32's range and usually trains without one.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from gnn.ops import autocast as _policy
from gnn.tensor import Tensor

__all__ = ["GradScaler", "autocast"]


class autocast:  # lower case: named as torch.autocast
    """Run the ops inside in mixed precision on `device_type` ("cuda" or "cpu").

    dtype: float16 or bfloat16 (default: float16 on CUDA, bfloat16 on the CPU). Usable as a
    context manager or a decorator; `enabled=False` turns autocast off inside an outer region.
    """

    def __init__(
        self,
        device_type: str = "cuda",
        dtype: Any = None,
        enabled: bool = True,
        cache_enabled: bool | None = None,  # accepted for PyTorch scripts; gnn keeps no cache
    ) -> None:
        if not isinstance(device_type, str):
            raise TypeError(
                f"autocast: device_type must be 'cuda' or 'cpu', got {type(device_type).__name__}"
            )
        self.device_type = device_type.split(":")[0]
        self.dtype = dtype
        self.enabled = bool(enabled)
        # Checked now, so a bad argument fails where it is written, not at the first `with`.
        _policy.push(self.device_type, dtype, self.enabled)
        _policy.pop()

    def __enter__(self) -> autocast:
        _policy.push(self.device_type, self.dtype, self.enabled)
        return self

    def __exit__(self, *exc: Any) -> None:
        _policy.pop()

    def __call__(self, fn: Any) -> Any:
        """Decorate a function so that every call runs under this autocast setting."""

        @functools.wraps(fn)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            with autocast(self.device_type, self.dtype, self.enabled):
                return fn(*args, **kwargs)

        return wrapped


def is_autocast_enabled(device_type: str = "cuda") -> bool:
    """True inside an enabled autocast region for `device_type`."""
    return _policy.low_dtype(device_type) is not None


# Per-optimizer progress between two update() calls, as PyTorch tracks it.
_READY, _UNSCALED, _STEPPED = "ready", "unscaled", "stepped"


class GradScaler:
    """Loss scaling for float16 training, with PyTorch's semantics and defaults.

    The loss is multiplied by `scale` before backward so that small gradients survive float16;
    `unscale_` divides the gradients back (and looks for inf/NaN), `step` skips the optimizer step
    when any was found, and `update` halves the scale after such a step or doubles it after
    `growth_interval` clean steps in a row. Disabled (enabled=False), every method is a
    pass-through, so one training loop serves all precisions.
    """

    def __init__(
        self,
        device: str = "cuda",
        init_scale: float = 2.0**16,
        growth_factor: float = 2.0,
        backoff_factor: float = 0.5,
        growth_interval: int = 2000,
        enabled: bool = True,
    ) -> None:
        if not init_scale > 0:
            raise ValueError(f"GradScaler: init_scale must be > 0, got {init_scale}")
        if not growth_factor > 1.0:
            raise ValueError(f"GradScaler: growth_factor must be > 1, got {growth_factor}")
        if not 0.0 < backoff_factor < 1.0:
            raise ValueError(f"GradScaler: backoff_factor must be in (0, 1), got {backoff_factor}")
        if isinstance(growth_interval, bool) or not isinstance(growth_interval, int):
            raise TypeError(f"GradScaler: growth_interval must be an int, got {growth_interval!r}")
        if growth_interval < 1:
            raise ValueError(f"GradScaler: growth_interval must be >= 1, got {growth_interval}")
        self.device = device
        self._enabled = bool(enabled)
        # float32, as PyTorch keeps it: the scale sequence then rounds the same way.
        self._scale = np.float32(init_scale)
        self._growth_factor = float(growth_factor)
        self._backoff_factor = float(backoff_factor)
        self._growth_interval = growth_interval
        self._growth_tracker = 0
        self._per_optimizer: dict[int, dict[str, Any]] = {}

    # ---- scaling ---------------------------------------------------------------------------

    def is_enabled(self) -> bool:
        return self._enabled

    @property
    def enabled(self) -> bool:
        return self._enabled

    def get_scale(self) -> float:
        """The current scale (1.0 when disabled)."""
        return float(self._scale) if self._enabled else 1.0

    def get_growth_factor(self) -> float:
        return self._growth_factor

    def get_backoff_factor(self) -> float:
        return self._backoff_factor

    def get_growth_interval(self) -> int:
        return self._growth_interval

    def scale(self, outputs: Any) -> Any:
        """outputs (a Tensor, or lists/tuples/dicts of them) multiplied by the scale."""
        if not self._enabled:
            return outputs
        if isinstance(outputs, Tensor):
            return outputs * float(self._scale)
        if isinstance(outputs, (list, tuple)):
            return type(outputs)(self.scale(o) for o in outputs)
        if isinstance(outputs, dict):
            return {k: self.scale(v) for k, v in outputs.items()}
        raise TypeError(
            f"GradScaler.scale: expected a Tensor (or a list/tuple/dict of them), got "
            f"{type(outputs).__name__}"
        )

    def _state(self, optimizer: Any) -> dict[str, Any]:
        return self._per_optimizer.setdefault(id(optimizer), {"stage": _READY, "found_inf": None})

    def unscale_(self, optimizer: Any) -> None:
        """Divide the optimizer's gradients by the scale in place and note any inf/NaN.

        Call it before clipping gradients; step() calls it when you have not.
        """
        if not self._enabled:
            return
        state = self._state(optimizer)
        if state["stage"] == _UNSCALED:
            raise RuntimeError(
                "unscale_() has already been called on this optimizer since the last update()"
            )
        if state["stage"] == _STEPPED:
            raise RuntimeError("unscale_() is being called after step(); call update() first")
        # 1/scale in float64, rounded to float32: what PyTorch multiplies by
        inv = np.float32(1.0 / np.float64(self._scale))
        checks = []
        xp = None
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.array
                if _policy.is_low(g.dtype):
                    raise ValueError(
                        "GradScaler: a parameter has a float16/bfloat16 gradient; keep parameters "
                        "in float32 and let autocast lower the ops (master weights)"
                    )
                # raw arrays through the public backend: unscaling in place is the point
                xp = p.grad.backend.xp
                g *= g.dtype.type(inv)
                # One device-side flag per gradient, combined below: no host read per parameter.
                checks.append(xp.isfinite(g).all())
        found = 0.0 if xp is None else 1.0 - xp.stack(checks).all().astype(np.float32)
        state["found_inf"] = _agree_across_ranks(found, xp)
        state["stage"] = _UNSCALED

    def step(self, optimizer: Any, *args: Any, **kwargs: Any) -> Any:
        """optimizer.step(*args, **kwargs) unless a gradient is inf/NaN (then nothing happens)."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("GradScaler.step does not support a closure")
        state = self._state(optimizer)
        if state["stage"] == _STEPPED:
            raise RuntimeError("step() has already been called since the last update()")
        if state["stage"] == _READY:
            self.unscale_(optimizer)
        state["stage"] = _STEPPED
        if float(state["found_inf"]) == 0.0:  # the one host read per step
            return optimizer.step(*args, **kwargs)
        return None

    def update(self, new_scale: float | Tensor | None = None) -> None:
        """Grow or back off the scale after this iteration's steps (or set it to new_scale)."""
        if not self._enabled:
            return
        if new_scale is not None:
            value = float(new_scale.item() if isinstance(new_scale, Tensor) else new_scale)
            if not value > 0:
                raise ValueError(f"GradScaler.update: new_scale must be > 0, got {value}")
            self._scale = np.float32(value)
        else:
            flags = [
                s["found_inf"] for s in self._per_optimizer.values() if s["found_inf"] is not None
            ]
            if not flags:
                raise RuntimeError(
                    "GradScaler.update: no inf checks were recorded; call scaler.step(optimizer) "
                    "(or unscale_) before update()"
                )
            if any(float(f) != 0.0 for f in flags):
                self._scale = np.float32(self._scale * np.float32(self._backoff_factor))
                self._growth_tracker = 0
            else:
                self._growth_tracker += 1
                if self._growth_tracker == self._growth_interval:
                    grown = np.float32(self._scale * np.float32(self._growth_factor))
                    if np.isfinite(grown):  # never grow into inf
                        self._scale = grown
                    self._growth_tracker = 0
        self._per_optimizer = {}

    # ---- checkpoints -----------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """{scale, growth_factor, backoff_factor, growth_interval, _growth_tracker} ({} if off)."""
        if not self._enabled:
            return {}
        return {
            "scale": float(self._scale),
            "growth_factor": self._growth_factor,
            "backoff_factor": self._backoff_factor,
            "growth_interval": self._growth_interval,
            "_growth_tracker": self._growth_tracker,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what state_dict() returned."""
        if not self._enabled:
            return
        if not state_dict:
            raise RuntimeError(
                "GradScaler.load_state_dict: the state dict is empty (saved by a disabled scaler)"
            )
        missing = {"scale", "growth_factor", "backoff_factor", "growth_interval",
                   "_growth_tracker"} - set(state_dict)  # fmt: skip
        if missing:
            raise KeyError(f"GradScaler.load_state_dict: missing {sorted(missing)}")
        self._scale = np.float32(state_dict["scale"])
        self._growth_factor = float(state_dict["growth_factor"])
        self._backoff_factor = float(state_dict["backoff_factor"])
        self._growth_interval = int(state_dict["growth_interval"])
        self._growth_tracker = int(state_dict["_growth_tracker"])


def _agree_across_ranks(found: Any, xp: Any) -> Any:
    """The found-inf flag, maxed over all ranks when gnn.distributed runs (all skip together)."""
    from gnn import distributed

    if not distributed.is_initialized() or distributed.get_world_size() == 1:
        return found
    flag = (xp or np).asarray(found, dtype=np.float32).reshape(1)
    return distributed.all_reduce_array(flag, op="max")[0]


# ---- training precision by name (fit's mixed_precision=, the CLI's --precision) -----------------

_PRECISIONS = {
    "fp32": None, "float32": None, "32": None,
    "bf16": "bfloat16", "bfloat16": "bfloat16",
    "fp16": "float16", "float16": "float16", "half": "float16", "16": "float16",
}  # fmt: skip


def parse_precision(name: str | None, who: str = "mixed_precision") -> str | None:
    """ "bf16"/"fp16"/"fp32" (and their long names) -> "bfloat16", "float16" or None."""
    if name is None:
        return None
    key = name.lower() if isinstance(name, str) else name
    if key not in _PRECISIONS:
        raise ValueError(f"{who}: expected 'fp32', 'bf16' or 'fp16', got {name!r}")
    return _PRECISIONS[key]


class _Default:
    """The precision `fit` uses when not told (set by the CLI's --precision for its recipes)."""

    value: str | None = None
    used = False


def default_training_precision(name: str | None) -> Any:
    """A context in which fit(mixed_precision=None) trains in `name` ("bf16", "fp16", "fp32")."""
    import contextlib

    low = parse_precision(name, "precision")

    @contextlib.contextmanager
    def scope() -> Any:
        old = _Default.value, _Default.used
        _Default.value, _Default.used = low, False
        try:
            yield _Default
        finally:
            _Default.value, _Default.used = old

    return scope()


def training_setup(mixed_precision: str | None, device_type: str) -> tuple[Any, GradScaler]:
    """(autocast context for forward passes, GradScaler) for a training loop in that precision.

    float16 gets a loss-scaling GradScaler; bfloat16 (float32's range) and float32 a disabled one.
    """
    low = parse_precision(mixed_precision)
    if mixed_precision is None and _Default.value is not None:
        low, _Default.used = _Default.value, True
    device_type = device_type.split(":")[0]
    if low is None:
        return autocast(device_type, enabled=False), GradScaler(device_type, enabled=False)
    scaler = GradScaler(device_type, enabled=low == "float16")
    return autocast(device_type, dtype=low), scaler


def quiet_overflow(scaler: GradScaler) -> Any:
    """A context that silences NumPy's overflow warnings in a loss-scaled backward pass.

    With float16 and a GradScaler, inf/NaN gradients are expected now and then: the scaler skips
    that step and lowers the scale, so a warning per op would only be noise.
    """
    import contextlib

    if not scaler.is_enabled():
        return contextlib.nullcontext()
    return np.errstate(over="ignore", invalid="ignore", divide="ignore")
