"""Picking parts of a tensor, PyTorch-named: narrow, chunk, split, flip, index_select, gather,
sort, topk, tril, triu, repeat, t.

All are compositions of getitem, where, reshape and expand: their gradients come from those.
"""

from __future__ import annotations

import itertools
import math
from collections import namedtuple
from collections.abc import Callable
from typing import Any

from gnn.ops._util import norm_dim
from gnn.ops.elementwise import where
from gnn.ops.registry import register
from gnn.ops.shape import expand, getitem, reshape, squeeze, transpose
from gnn.tensor import Tensor

SortResult = namedtuple("SortResult", ["values", "indices"])


def _index_array(index: Any, x: Tensor, op: str, dim: int) -> tuple[int, Any]:
    """dim as a non-negative index, and an integer index as an array on x's device (a Tensor
    there, or anything array-like), its values checked against dim's size: CuPy would wrap
    out-of-range indices silently."""
    d = norm_dim(dim, x.ndim, op)
    if isinstance(index, Tensor):
        if index._be is not x._be:
            raise RuntimeError(f"{op}: index is on {index.device}, the input on {x.device}")
        data = index.array
    else:
        data = x._be.asarray(index)
    if data.dtype.kind not in "iu":
        raise TypeError(f"{op}: index must hold integers, got dtype {data.dtype}")
    size = x.shape[d] if x.ndim else 1
    lo, hi = x._be.value_range(data) if data.size else (0, 0)
    if lo < -size or hi >= size:
        bad = lo if lo < -size else hi
        raise IndexError(f"{op}: index {bad} is out of range for dim {dim} of size {size}")
    return d, data


@register(method=True, top=True)
def narrow(x: Tensor, dim: int, start: int, length: int) -> Tensor:
    """x's elements start .. start + length - 1 along dim (a view, as in PyTorch)."""
    d = norm_dim(dim, x.ndim, "narrow")
    n = x.shape[d]
    if start < 0:
        start += n
    if not (0 <= start <= n and 0 <= length and start + length <= n):
        raise IndexError(
            f"narrow: start {start} and length {length} do not fit dim {dim} of size {n}"
        )
    return getitem(x, (slice(None),) * d + (slice(start, start + length),))


@register(method=True, top=True)
def split(x: Tensor, split_size_or_sections: Any, dim: int = 0) -> tuple[Tensor, ...]:
    """Pieces along dim: of split_size each (the last may be smaller), or of the listed sizes."""
    d = norm_dim(dim, x.ndim, "split")
    n = x.shape[d]
    if isinstance(split_size_or_sections, int):
        size = split_size_or_sections
        if size <= 0:
            raise ValueError(f"split: split_size must be positive, got {size}")
        sizes = [min(size, n - s) for s in range(0, n, size)] or [0]
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if any(s < 0 for s in sizes) or sum(sizes) != n:
            raise ValueError(f"split: sizes {sizes} do not add up to dim {dim} of size {n}")
    starts = itertools.accumulate(sizes, initial=0)
    return tuple(narrow(x, d, start, size) for start, size in zip(starts, sizes))


@register(method=True, top=True)
def chunk(x: Tensor, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
    """At most `chunks` pieces along dim, each ceil(size / chunks) long (the last may be less)."""
    if not isinstance(chunks, int) or chunks <= 0:
        raise ValueError(f"chunk: chunks must be a positive integer, got {chunks!r}")
    n = x.shape[norm_dim(dim, x.ndim, "chunk")]
    return split(x, max(1, math.ceil(n / chunks)), dim)


@register(method=True, sizes=True, top=True)
def flip(x: Tensor, dims: Any) -> Tensor:
    """x with the order of elements reversed along each of dims."""
    axes = {norm_dim(d, x.ndim, "flip") for d in ((dims,) if isinstance(dims, int) else dims)}
    return getitem(
        x, tuple(slice(None, None, -1) if a in axes else slice(None) for a in range(x.ndim))
    )


@register(method=True, top=True)
def index_select(x: Tensor, dim: int, index: Any) -> Tensor:
    """The entries of x at the 1-D integer `index` along dim (repeats allowed)."""
    d, data = _index_array(index, x, "index_select", dim)
    if data.ndim > 1:
        raise ValueError(f"index_select: index must be 1-D, got shape {tuple(data.shape)}")
    if x.ndim == 0:
        return reshape(getitem(reshape(x, (1,)), data.reshape(-1)), tuple(data.shape))
    return getitem(x, (slice(None),) * d + (data.reshape(-1),))


@register(method=True, top=True)
def gather(x: Tensor, dim: int, index: Any) -> Tensor:
    """out[i][j][k] = x[i][index[i][j][k]][k] for dim 1 (and likewise for any dim).

    `index` has x's number of dims and is no larger than x outside dim, as in PyTorch.
    """
    d, data = _index_array(index, x, "gather", dim)
    if data.ndim != x.ndim and not (x.ndim == 0 and data.ndim <= 1):
        raise ValueError(
            f"gather: index must have as many dims as the input ({x.ndim}), "
            f"got shape {tuple(data.shape)}"
        )
    if x.ndim == 0:
        return reshape(getitem(reshape(x, (1,)), data.reshape(-1)), data.shape)
    for k, (m, n) in enumerate(zip(data.shape, x.shape)):
        if k != d and m > n:
            raise ValueError(
                f"gather: index shape {tuple(data.shape)} is larger than the input "
                f"{tuple(x.shape)} in dim {k}"
            )
    # each other dim k indexed by its own positions, broadcast along the rest (xp.ix_: an open
    # mesh); an advanced index: getitem's backward adds up positions gathered more than once
    mesh = x._be.xp.ix_(*[x._be.xp.arange(m) for m in data.shape])
    return getitem(x, tuple(data if k == d else mesh[k] for k in range(data.ndim)))


@register(method=True, top=True)
def sort(x: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> SortResult:
    """(values, indices) of x sorted along dim, always stably: equal values keep their order,
    descending too (NaN sorts as the largest); the values carry the gradient back."""
    xp, d = x._be.xp, norm_dim(dim, x.ndim, "sort")
    if x.ndim == 0:  # one element: index 0 (NumPy's argsort gives shape (1,))
        return SortResult(getitem(x, ()), Tensor._make(xp.zeros((), xp.int64), x._be, False))
    if descending:  # the ascending order of x reversed, read backwards: ties stay in order
        order = x.shape[d] - 1 - xp.flip(xp.argsort(xp.flip(x.array, d), d, kind="stable"), d)
    else:
        order = xp.argsort(x.array, axis=d, kind="stable")
    indices = Tensor._make(order, x._be, False)
    return SortResult(gather(x, d, indices), indices)


@register(method=True, top=True)
def topk(x: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> SortResult:
    """(values, indices) of the k largest (or smallest) entries along dim, always in order."""
    d = norm_dim(dim, x.ndim, "topk")
    n = x.shape[d] if x.ndim else 1
    if not isinstance(k, int) or not 0 <= k <= n:
        raise ValueError(f"topk: k must be in [0, {n}] for dim {dim} of size {n}, got {k!r}")
    values, indices = sort(x, dim, descending=largest)
    if x.ndim == 0:
        return SortResult(values, indices)
    return SortResult(narrow(values, d, 0, k), narrow(indices, d, 0, k))


def _triangle(name: str, lower: bool, doc: str) -> Callable[..., Tensor]:
    def op(x: Tensor, diagonal: int = 0) -> Tensor:
        if x.ndim < 2:
            raise ValueError(f"{name}: input must have at least 2 dims, got shape {x.shape}")
        xp, (n, m), k = x._be.xp, x.shape[-2:], int(diagonal)
        # the mask is made on the device (no copy); triu keeps what tril(k - 1) drops
        keep = xp.tri(n, m, k, dtype=bool) if lower else ~xp.tri(n, m, k - 1, dtype=bool)
        return where(keep, x, 0)

    return register(name=name, doc=doc, method=True, top=True)(op)


tril = _triangle("tril", True, "x with 0 above the diagonal-th diagonal (of the last two dims).")
triu = _triangle("triu", False, "x with 0 below the diagonal-th diagonal (of the last two dims).")


@register(method=True)
def repeat(x: Tensor, *sizes: Any) -> Tensor:
    """x tiled sizes[k] times along each dim k (extra leading sizes add dims), as Tensor.repeat."""
    reps = tuple(sizes[0]) if len(sizes) == 1 and not isinstance(sizes[0], int) else sizes
    if len(reps) < x.ndim:
        raise ValueError(
            f"repeat: {len(reps)} sizes for a tensor of {x.ndim} dims; give at least {x.ndim}"
        )
    if any(not isinstance(r, int) or r < 0 for r in reps):
        raise ValueError(f"repeat: sizes must be non-negative integers, got {reps}")
    shape = (1,) * (len(reps) - x.ndim) + tuple(x.shape)
    spread = tuple(v for s in shape for v in (1, s))  # a length-1 axis before each dim
    tiled = tuple(v for r, s in zip(reps, shape) for v in (r, s))
    out = expand(reshape(x, spread), tiled)
    return reshape(out, tuple(r * s for r, s in zip(reps, shape)))


@register(method=True, top=True)
def t(x: Tensor) -> Tensor:
    """The transpose of a matrix; vectors and 0-d tensors come back unchanged."""
    if x.ndim > 2:
        raise ValueError(f"t: expects a tensor of at most 2 dims, got shape {x.shape}")
    return transpose(x, 0, 1) if x.ndim == 2 else x


@register(method=True, top=True)
def argsort(x: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
    """The indices that sort x along dim (always a stable sort here, as `sort`)."""
    return sort(x, dim, descending)[1]


@register(method=True, top=True)
def unbind(x: Tensor, dim: int = 0) -> tuple[Tensor, ...]:
    """The slices of x along dim, that dim removed (torch.unbind)."""
    d = norm_dim(dim, x.ndim, "unbind")
    return tuple(squeeze(narrow(x, d, i, 1), d) for i in range(x.shape[d]))
