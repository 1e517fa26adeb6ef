"""Process-wide settings: default dtype, grad mode and the random seed.

With the default device (gnn/backend/, which can check a device at once), these are the only
global mutable state in gnn; each has a setter and a context manager.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from gnn.dtypes import float32, parse_dtype


class _State(threading.local):
    grad_enabled = True  # each thread starts with grad mode on


_state = _State()
_default_dtype: np.dtype = float32
_seed_generation = 0  # bumped by manual_seed so backends re-seed their generators
_seed: int | None = None


# ---- grad mode -------------------------------------------------------------------------------


def is_grad_enabled() -> bool:
    return _state.grad_enabled


class set_grad_enabled:
    """Turn graph recording on or off: at once when called, and back on leaving a `with` block
    (`with gnn.set_grad_enabled(training):`, as in PyTorch)."""

    def __init__(self, mode: bool) -> None:
        self._prev = _state.grad_enabled
        _state.grad_enabled = bool(mode)

    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc: Any) -> None:
        _state.grad_enabled = self._prev


class _GradMode:
    """Context manager and decorator that sets grad mode to `_mode` and restores it after."""

    _mode: bool

    def __enter__(self) -> None:
        self._prev = _state.grad_enabled
        _state.grad_enabled = self._mode

    def __exit__(self, *exc: Any) -> None:
        _state.grad_enabled = self._prev

    def __call__(self, func: Callable) -> Callable:
        # Written out rather than contextlib.ContextDecorator: optimizer steps run through this
        # every training step, and this costs about 60 % of its instructions per call.
        mode = self._mode

        @functools.wraps(func)
        def run_in_mode(*args: Any, **kwargs: Any) -> Any:
            state = _state
            prev = state.grad_enabled
            state.grad_enabled = mode
            try:
                return func(*args, **kwargs)
            finally:
                state.grad_enabled = prev

        return run_in_mode


class no_grad(_GradMode):
    """Context manager (and decorator) that turns graph recording off."""

    _mode = False


class enable_grad(_GradMode):
    """Context manager (and decorator) that turns graph recording on."""

    _mode = True


# ---- default dtype ---------------------------------------------------------------------------


def get_default_dtype() -> np.dtype:
    return _default_dtype


def set_default_dtype(dtype: Any) -> None:
    """Set the dtype of new floating tensors (float16, float32 or float64)."""
    global _default_dtype
    dt = parse_dtype(dtype)
    if dt.kind != "f":
        raise TypeError(f"set_default_dtype: default dtype must be floating, got {dt}")
    _default_dtype = dt


def default_dtype(dtype: Any) -> contextlib.AbstractContextManager[None]:
    """`with gnn.default_dtype(gnn.float64):` the default dtype inside the block."""
    return _for_block(set_default_dtype, dtype, _default_dtype)


@contextlib.contextmanager
def _for_block(set_: Callable[[Any], None], value: Any, prev: Any) -> Iterator[None]:
    """set_(value) for the length of a `with` block, then set_(prev): the previous setting."""
    set_(value)
    try:
        yield
    finally:
        set_(prev)


# ---- random seed -----------------------------------------------------------------------------


def manual_seed(seed: int) -> None:
    """Seed every backend's random generator (weights init, dropout, shuffling)."""
    global _seed_generation, _seed
    _seed = int(seed)
    _seed_generation += 1


def seed_state() -> tuple[int, int | None]:
    """(generation, seed): backends re-seed when the generation changes."""
    return _seed_generation, _seed


def restore_seed(seed: int | None) -> None:
    """Record `seed` as the last manual_seed without re-seeding any generator.

    Used when a checkpoint restores generator states: generators made later seed from it, as in
    the saved run.
    """
    global _seed
    _seed = None if seed is None else int(seed)
