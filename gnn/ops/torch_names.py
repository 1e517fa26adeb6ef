"""PyTorch's other spellings of gnn's ops (true_divide, subtract, clip, swapaxes, ...), the
rounding modes of div, argsort, unbind, and multinomial sampling.

The aliases call the ops they name, so their gradients are those ops' gradients.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gnn.dtypes import is_floating
from gnn.ops._util import norm_dim, pair
from gnn.ops.elementwise import abs, add, clamp, div, eq, ge, gt, le, lt, mul, ne, neg, sub
from gnn.ops.select import narrow, sort
from gnn.ops.shape import cat, squeeze, transpose
from gnn.tensor import Tensor

__all__ = [
    "absolute", "add", "argsort", "clip", "concat", "concatenate", "divide", "greater",
    "greater_equal", "is_floating_point", "is_tensor", "less", "less_equal", "multinomial",
    "multiply", "negative", "not_equal", "numel", "sub", "subtract", "swapaxes", "swapdims",
    "true_divide", "unbind",
]  # fmt: skip


def _scaled(other: Any, alpha: Any) -> Any:
    if alpha == 1:
        return other
    return mul(other, alpha) if isinstance(other, Tensor) else other * alpha


def add_alpha(a: Any, b: Any, alpha: Any = 1) -> Tensor:
    """a + alpha * b (torch.add)."""
    return add(a, _scaled(b, alpha))


def subtract(a: Any, b: Any, alpha: Any = 1) -> Tensor:
    """a - alpha * b (torch.sub, torch.subtract)."""
    return sub(a, _scaled(b, alpha))


def multiply(a: Any, b: Any) -> Tensor:
    """a * b (torch.multiply)."""
    return mul(a, b)


def true_divide(a: Any, b: Any) -> Tensor:
    """a / b, always true division (torch.true_divide)."""
    return div(a, b)


def divide(a: Any, b: Any, rounding_mode: str | None = None) -> Tensor:
    """a / b; rounding_mode "trunc" or "floor" rounds the quotient (no gradient, as PyTorch's is
    zero) and keeps integer inputs integer."""
    if rounding_mode is None:
        return div(a, b)
    if rounding_mode not in ("trunc", "floor"):
        raise ValueError(
            f"div: rounding_mode must be None, 'trunc' or 'floor', got {rounding_mode!r}"
        )
    a, b = pair(a, b)
    xp = a._be.xp
    if a.dtype.kind in "iub" and b.dtype.kind in "iub":
        if bool((b.array == 0).any()):
            raise ZeroDivisionError("div: integer division by zero")
        q = xp.floor_divide(a.array, b.array)
        if rounding_mode == "trunc":  # floor_divide rounds down: step negative quotients back up
            q = q + ((q < 0) & (q * b.array != a.array))
    else:
        q = xp.true_divide(a.array, b.array)
        q = xp.trunc(q) if rounding_mode == "trunc" else xp.floor(q)
    return Tensor._make(q, a._be, False)


def negative(x: Tensor) -> Tensor:
    """-x (torch.negative)."""
    return neg(x)


def absolute(x: Tensor) -> Tensor:
    """|x| (torch.absolute)."""
    return abs(x)


def clip(x: Tensor, min: Any = None, max: Any = None) -> Tensor:
    """x clamped to [min, max] (torch.clip)."""
    return clamp(x, min, max)


def greater(a: Any, b: Any) -> Tensor:
    """a > b (torch.greater)."""
    return gt(a, b)


def greater_equal(a: Any, b: Any) -> Tensor:
    """a >= b (torch.greater_equal)."""
    return ge(a, b)


def less(a: Any, b: Any) -> Tensor:
    """a < b (torch.less)."""
    return lt(a, b)


def less_equal(a: Any, b: Any) -> Tensor:
    """a <= b (torch.less_equal)."""
    return le(a, b)


def not_equal(a: Any, b: Any) -> Tensor:
    """a != b (torch.not_equal)."""
    return ne(a, b)


def equal_elements(a: Any, b: Any) -> Tensor:
    """a == b (torch.eq)."""
    return eq(a, b)


def concat(tensors: Any, dim: int = 0) -> Tensor:
    """Join tensors along an existing dim (torch.concat)."""
    return cat(tensors, dim)


def concatenate(tensors: Any, axis: int = 0) -> Tensor:
    """Join tensors along an existing axis (torch.concatenate)."""
    return cat(tensors, axis)


def swapaxes(x: Tensor, axis0: int, axis1: int) -> Tensor:
    """x with two axes exchanged (torch.swapaxes)."""
    return transpose(x, axis0, axis1)


def swapdims(x: Tensor, dim0: int, dim1: int) -> Tensor:
    """x with two dims exchanged (torch.swapdims)."""
    return transpose(x, dim0, dim1)


def argsort(x: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
    """The indices that sort x along dim (always a stable sort here)."""
    return sort(x, dim, descending)[1]


def unbind(x: Tensor, dim: int = 0) -> tuple[Tensor, ...]:
    """The slices of x along dim, that dim removed (torch.unbind)."""
    d = norm_dim(dim, x.ndim, "unbind")
    return tuple(squeeze(narrow(x, d, i, 1), d) for i in range(x.shape[d]))


def numel(x: Tensor) -> int:
    """The number of elements of x."""
    return x.numel()


def is_tensor(obj: Any) -> bool:
    """True for gnn Tensors (and Parameters)."""
    return isinstance(obj, Tensor)


def is_floating_point(x: Tensor) -> bool:
    """True when x has a floating dtype."""
    return is_floating(x.dtype)


def multinomial(
    input: Tensor,  # PyTorch's name
    num_samples: int,
    replacement: bool = False,
    generator: Any = None,
) -> Tensor:
    """Draw category indices with probabilities proportional to the rows of `input` (1-D or 2-D,
    non-negative, not necessarily normalised); int64, shape (..., num_samples).

    Seeded by gnn.manual_seed; the draws are not PyTorch's (their generators differ).
    """
    if generator is not None:
        raise TypeError("multinomial: generator= is not supported; seed with gnn.manual_seed")
    if not isinstance(input, Tensor):
        raise TypeError(f"multinomial: expected a Tensor, got {type(input).__name__}")
    if input.ndim not in (1, 2) or input.shape[-1] == 0:
        raise ValueError(
            f"multinomial: expected a 1-D or 2-D tensor with at least one category, "
            f"got shape {input.shape}"
        )
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"multinomial: num_samples must be an integer >= 1, got {num_samples!r}")
    be, xp = input._be, input._be.xp
    k = input.shape[-1]
    rows = input.array.reshape(-1, k).astype(np.float64)
    nonzero = (rows > 0).sum(axis=1)
    # One host check for all the ways a row can be bad (as PyTorch, which also syncs here).
    bad = xp.stack([~xp.isfinite(rows).all(), (rows < 0).any(), (nonzero == 0).any()])
    bad = [bool(b) for b in be.to_numpy(bad)]
    if bad[0] or bad[1]:
        raise ValueError("multinomial: probabilities must be finite and non-negative")
    if bad[2]:
        raise ValueError("multinomial: a row of probabilities sums to zero")
    n_rows = rows.shape[0]
    if not replacement:
        if num_samples > k:
            raise ValueError(
                f"multinomial: cannot draw {num_samples} samples without replacement from "
                f"{k} categories"
            )
        fewest = int(be.to_numpy(nonzero.min()))
        if num_samples > fewest:
            raise ValueError(
                f"multinomial: cannot draw {num_samples} samples without replacement from a "
                f"row with only {fewest} non-zero probabilities"
            )
        # Exponential races: category i arrives at E_i / p_i; the first num_samples to arrive
        # are a draw without replacement with the right probabilities.
        arrival = -xp.log1p(-be.rand((n_rows, k), np.float64))
        positive = rows > 0
        arrival = xp.where(positive, arrival / xp.where(positive, rows, 1.0), np.inf)
        idx = xp.argsort(arrival, axis=1, kind="stable")[:, :num_samples]
    else:
        cdf = xp.cumsum(rows, axis=1)
        cdf /= cdf[:, -1:]
        u = be.rand((n_rows, num_samples), np.float64)
        # One searchsorted for all rows: row r's cdf and draws are shifted by r.
        offset = xp.arange(n_rows, dtype=np.float64)[:, None]
        flat = (cdf + offset).reshape(-1)
        idx = xp.searchsorted(flat, (u + offset).reshape(-1), side="right").reshape(u.shape)
        idx = idx - xp.arange(n_rows)[:, None] * k
        # A draw just below 1 can round past its row's end: take the row's last possible one.
        last = (k - 1) - xp.argmax(rows[:, ::-1] > 0, axis=1)
        idx = xp.minimum(idx, last[:, None])
    out = idx.astype(np.int64).reshape(input.shape[:-1] + (num_samples,))
    return Tensor._make(out, be, False)
