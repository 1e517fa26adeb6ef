"""Autocast: the op policy of mixed precision, applied where the ops take their inputs.

Inside `gnn.autocast(device_type, dtype)` the ops in LOW_PRECISION_OPS cast their floating inputs
(float32 parameters included) to the low dtype, and the ops in FLOAT32_OPS cast low-precision
inputs to float32. The casts are ordinary graph ops, so gradients flow back through them and reach
float32 parameters as float32 (the master weights). float64 tensors are never cast, as in PyTorch.

Each op's entry point calls `cast_inputs(op_name, ...)`; outside autocast that is one list test.
`compute_widened` lets a Function hold bfloat16/float16 on the CPU while computing in float32
(NumPy has no fast low-precision matmul: bfloat16 there is storage, float32 is the compute).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, TypeVar

import numpy as np

from gnn.autograd import Function
from gnn.dtypes import float32, is_bfloat16, parse_dtype
from gnn.ops.shape import Cast
from gnn.tensor import Tensor

# PyTorch's policy, reduced to the ops gnn has. Tensor cores exist for these on a GPU:
LOW_PRECISION_OPS = frozenset(
    {"matmul", "linear", "conv2d", "conv_transpose2d", "scaled_dot_product_attention"}
)
# ... and these lose accuracy in 16 bits (exp, long sums, division by small numbers):
FLOAT32_OPS = frozenset(
    {
        "softmax", "log_softmax", "logsumexp", "sum", "mean", "var", "cumsum",
        "layer_norm", "batch_norm",
        "cross_entropy", "nll_loss", "mse_loss", "l1_loss", "binary_cross_entropy",
        "binary_cross_entropy_with_logits",
    }
)  # fmt: skip

DEFAULT_DTYPES = {"cuda": "float16", "cpu": "bfloat16"}


# The regions entered, innermost last: (device_type, low dtype or None when disabled). A context
# variable: each thread has its own (a new one starts with none), as PyTorch's autocast state.
_regions: ContextVar[tuple[tuple[str, np.dtype | None], ...]] = ContextVar("autocast", default=())


def push(device_type: str, dtype: Any, enabled: bool) -> None:
    """Enter an autocast region (used by gnn.autocast); `pop` leaves it."""
    if device_type not in DEFAULT_DTYPES:
        raise ValueError(f"autocast: device_type must be 'cuda' or 'cpu', got {device_type!r}")
    low = parse_dtype(DEFAULT_DTYPES[device_type] if dtype is None else dtype)
    if not is_low(low):
        raise ValueError(f"autocast: dtype must be float16 or bfloat16, got {low}")
    if device_type == "cuda" and is_bfloat16(low):
        # CuPy has no bfloat16 arrays, so gnn's CUDA backend cannot hold them.
        raise ValueError("autocast: bfloat16 on CUDA is not supported by gnn; use float16")
    _regions.set((*_regions.get(), (device_type, low if enabled else None)))


def pop() -> None:
    _regions.set(_regions.get()[:-1])


def low_dtype(device_type: str) -> np.dtype | None:
    """The low dtype autocast uses for `device_type` now, or None when autocast is off there."""
    return next((low for dev, low in reversed(_regions.get()) if dev == device_type), None)


def is_low(dtype: Any) -> bool:
    """float16 or bfloat16 (the size first: every op's inputs are asked, and most are 4 bytes)."""
    return dtype.itemsize == 2 and (dtype.kind == "f" or is_bfloat16(dtype))


def cast_inputs(op: str, *args: Any) -> tuple[Any, ...]:
    """`args` as autocast wants them for `op` (unchanged outside autocast or for other ops)."""
    if not _regions.get():
        return args
    low = next((low_dtype(a._be.name) for a in args if isinstance(a, Tensor)), None)
    if low is None:
        return args
    if op in LOW_PRECISION_OPS:  # every float up to 32 bits goes down to the low dtype
        target, casts = low, lambda dt: dt != low and dt.kind == "f" and dt.itemsize <= 4
    elif op in FLOAT32_OPS:
        target, casts = float32, is_low
    else:
        raise KeyError(f"autocast: {op!r} is in neither policy list")
    return tuple(
        Cast.apply(a, dtype=target) if isinstance(a, Tensor) and casts(a.dtype) else a for a in args
    )


FunctionT = TypeVar("FunctionT", bound=Function)


def _widen(a: Any) -> Any:
    return a.astype(np.float32) if isinstance(a, np.ndarray) and is_low(a.dtype) else a


def compute_widened(cls: type[FunctionT]) -> type[FunctionT]:
    """Make a Function compute in float32 on the CPU when its inputs are bfloat16/float16.

    Outputs and gradients are rounded back to the input dtypes: the graph stores low precision,
    the arithmetic is float32 (what NumPy does fast). On a GPU the Function runs unchanged.
    """
    forward, backward = cls.forward, cls.backward

    def widened_forward(self: Any, *xs: Any) -> Any:
        low = next((x.dtype for x in xs if isinstance(x, np.ndarray) and is_low(x.dtype)), None)
        self._low_dtypes = None if low is None else [x.dtype for x in xs]
        if low is None:
            return forward(self, *xs)
        return forward(self, *[_widen(x) for x in xs]).astype(low)

    def widened_backward(self: Any, gy: Any) -> Any:
        if self._low_dtypes is None:
            return backward(self, gy)
        grads = backward(self, _widen(gy))
        # one gradient per input, as a tuple even for one input (the engine takes either)
        return tuple(
            None if g is None else g.astype(dt, copy=False)
            for g, dt in zip(grads if isinstance(grads, tuple) else (grads,), self._low_dtypes)
        )

    # replacing a class's methods is what this decorator is for; mypy refuses it on principle
    cls.forward, cls.backward = widened_forward, widened_backward  # type: ignore[method-assign]
    return cls
