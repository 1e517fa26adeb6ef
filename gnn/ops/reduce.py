"""Reductions (sum, mean, var, max, min, argmax, logsumexp), cumsum and the softmax family.

PyTorch-shaped: `dim`, `keepdim`.
"""

from __future__ import annotations

import math
from collections import namedtuple
from collections.abc import Callable
from typing import Any

from gnn.dtypes import is_floating
from gnn.ops._util import Configured, norm_dim, norm_dims
from gnn.ops.autocast import cast_inputs
from gnn.ops.registry import register
from gnn.ops.shape import AlongAxis, reshape
from gnn.tensor import Tensor

MaxResult = namedtuple("MaxResult", ["values", "indices"])


def _kept(shape: tuple, axes: tuple | None) -> tuple:
    """`shape` reduced over `axes` (None: all) with keepdim=True: those axes of size 1."""
    return tuple(1 if axes is None or k in axes else n for k, n in enumerate(shape))


def _squeezed(y: Any, axes: tuple | None, keepdim: bool) -> Any:
    """y, reduced over `axes` (None: all) with keepdims=True, as keepdim asks."""
    return y if keepdim else y.reshape(()) if axes is None else y.squeeze(axes)


def _count(shape: tuple, axes: tuple | None) -> int:
    """How many elements a reduction over `axes` (None: all) takes in for each output."""
    return math.prod(shape if axes is None else [shape[a] for a in axes])


class Reduction(Configured):
    """A Function reducing over `axes` (None: all), keeping them as size 1 when keepdim."""

    axes: tuple | None
    keepdim: bool


class SumMean(Reduction):
    """sum, or mean; the gradient goes back over the reduced axes as a broadcast view (no copy),
    the mean's divided by the count of elements each output took in."""

    mean: bool = False  # the mean, else the sum

    def forward(self, x: Any) -> Any:
        self.shape = x.shape
        if self.mean:
            return x.mean(axis=self.axes, keepdims=self.keepdim)
        return x.sum(axis=self.axes, keepdims=self.keepdim)

    def backward(self, gy: Any) -> Any:
        # a sum, or a mean of no elements: no division
        count = _count(self.shape, self.axes) if self.mean else 0
        g = gy / count if count else gy
        return self.be.xp.broadcast_to(g.reshape(_kept(self.shape, self.axes)), self.shape)


@register(method=True, top=True)
def sum(x: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    """Sum over `dim` (an int, a tuple, or None for all)."""
    (x,) = cast_inputs("sum", x)
    return SumMean.apply(x, axes=norm_dims(dim, x.ndim, "sum"), keepdim=keepdim)


@register(method=True, top=True)
def mean(x: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    """Mean over `dim` (an int, a tuple, or None for all)."""
    (x,) = cast_inputs("mean", x)
    if not is_floating(x.dtype):
        raise TypeError(f"mean: needs a floating tensor, got {x.dtype} (use .float() first)")
    return SumMean.apply(x, axes=norm_dims(dim, x.ndim, "mean"), keepdim=keepdim, mean=True)


class MaxMin(Reduction):
    """max or min over axes; the gradient is shared evenly among tied extremes."""

    take_max: bool  # max, else min

    def forward(self, x: Any) -> Any:
        y = (x.max if self.take_max else x.min)(axis=self.axes, keepdims=True)
        self.mask = x == y
        return _squeezed(y, self.axes, self.keepdim)

    def backward(self, gy: Any) -> Any:
        count = self.mask.sum(axis=self.axes, keepdims=True)
        return self.mask * (gy.reshape(count.shape) / count)


def _arg(x: Tensor, d: int | None, keepdim: bool, take_max: bool) -> Tensor:
    """Where x's largest (or smallest) entries are along dim d (None: over all); no gradient."""
    arg = x.array.argmax if take_max else x.array.argmin
    if d is None or x.ndim == 0:  # a 0-d x (dim 0 or -1): its element; NumPy gives scalars
        return Tensor._make(x._be.xp.asarray(arg()), x._be, False)
    return Tensor._make(arg(axis=d, keepdims=keepdim), x._be, False)


def _extreme(name: str, take_max: bool, doc: str) -> Callable[..., Any]:
    def op(x: Tensor, dim: int | None = None, keepdim: bool = False) -> Any:
        d = None if dim is None else norm_dim(dim, x.ndim, name)
        if x.array.size == 0 and (d is None or x.shape[d] == 0):
            where = "an empty tensor" if d is None else f"dim {dim} of size 0"
            raise RuntimeError(f"{name}: cannot reduce {where} (shape {x.shape})")
        axes = (d,) if d is not None and x.ndim else None
        values = MaxMin.apply(x, axes=axes, keepdim=keepdim and d is not None, take_max=take_max)
        return values if d is None else MaxResult(values, _arg(x, d, keepdim, take_max))

    return register(name=name, doc=doc, method=True, top=True)(op)


max = _extreme("max", True, "Largest value; with `dim`, a (values, indices) pair as in PyTorch.")
min = _extreme("min", False, "Smallest value; with `dim`, a (values, indices) pair as in PyTorch.")


def _index_of(name: str, take_max: bool, doc: str) -> Callable[..., Tensor]:
    def op(x: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
        return _arg(x, None if dim is None else norm_dim(dim, x.ndim, name), keepdim, take_max)

    return register(name=name, doc=doc, method=True, top=True)(op)


argmax = _index_of("argmax", True, "Index of the largest value (of all when dim is None).")
argmin = _index_of("argmin", False, "Index of the smallest value (of all when dim is None).")


@register(method=True, top=True)
def var(x: Tensor, dim: Any = None, keepdim: bool = False, unbiased: bool = True) -> Tensor:
    """Variance over `dim` (Bessel-corrected unless unbiased=False), composed from mean."""
    (x,) = cast_inputs("var", x)
    n = _count(x.shape, norm_dims(dim, x.ndim, "var"))
    centered = x - mean(x, dim, keepdim=True)
    # As PyTorch: no degrees of freedom left (one element, unbiased) gives nan, not 0.
    return sum(centered * centered, dim, keepdim) / (n - 1 if unbiased and n else n)


@register(method=True, top=True)
def std(x: Tensor, dim: Any = None, keepdim: bool = False, unbiased: bool = True) -> Tensor:
    """Standard deviation over `dim`."""
    return var(x, dim, keepdim, unbiased) ** 0.5


# ---- softmax family ------------------------------------------------------------------------------


def _along(fn: type[AlongAxis], op: str, x: Tensor, dim: int) -> Tensor:
    """fn along dim of x, after autocast; a 0-d x as one element along axis 0, as PyTorch takes
    dim 0 or -1 there and NumPy has no axis 0 in a 0-d array."""
    (x,) = cast_inputs(op, x)
    axis = norm_dim(dim, x.ndim, op)
    if x.ndim == 0:
        return reshape(fn.apply(reshape(x, (1,)), axis=0), ())
    return fn.apply(x, axis=axis)


class Softmax(AlongAxis):
    def forward(self, x: Any) -> Any:
        self.y = y = x - (x.max(axis=self.axis, keepdims=True) if x.size else 0)  # empty: no max
        self.be.xp.exp(y, out=y)
        y /= y.sum(axis=self.axis, keepdims=True)
        return y

    def backward(self, gy: Any) -> Any:
        y = self.y
        gx = gy * y
        gx -= y * gx.sum(axis=self.axis, keepdims=True)
        return gx


@register(method=True, top=True)
def softmax(x: Tensor, dim: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along dim, computed stably."""
    return _along(Softmax, "softmax", x, dim)


class LogSoftmax(AlongAxis):
    def forward(self, x: Any) -> Any:
        xp = self.be.xp
        self.y = y = x - (x.max(axis=self.axis, keepdims=True) if x.size else 0)  # empty: no max
        y -= xp.log(xp.exp(y).sum(axis=self.axis, keepdims=True))  # log-sum-exp
        return y

    def backward(self, gy: Any) -> Any:
        return gy - self.be.xp.exp(self.y) * gy.sum(axis=self.axis, keepdims=True)


@register(method=True, top=True)
def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    """log(softmax(x)) along dim, computed stably."""
    return _along(LogSoftmax, "log_softmax", x, dim)


# ---- logsumexp, cumsum ---------------------------------------------------------------------------


class LogSumExp(Reduction):
    def forward(self, x: Any) -> Any:
        xp = self.be.xp
        m = x.max(axis=self.axes, keepdims=True) if x.size else xp.zeros((1,) * x.ndim, x.dtype)
        m = xp.where(xp.isfinite(m), m, 0)  # rows of -inf (or inf) must not give inf - inf
        out = xp.log(xp.exp(x - m).sum(axis=self.axes, keepdims=True))
        out += m
        self.x, self.out = x, out
        return _squeezed(out, self.axes, self.keepdim)

    def backward(self, gy: Any) -> Any:
        gx = self.be.xp.exp(self.x - self.out)  # the softmax over the reduced axes
        gx *= gy.reshape(self.out.shape)
        return gx


@register(method=True, top=True)
def logsumexp(x: Tensor, dim: Any, keepdim: bool = False) -> Tensor:
    """log(sum(exp(x))) over dim (an int or a tuple), computed stably."""
    (x,) = cast_inputs("logsumexp", x)
    return LogSumExp.apply(x, axes=norm_dims(dim, x.ndim, "logsumexp"), keepdim=keepdim)


class CumSum(AlongAxis):
    def forward(self, x: Any) -> Any:
        return self.be.xp.cumsum(x, axis=self.axis)

    def backward(self, gy: Any) -> Any:
        # each input reaches every later output: the sums of gy from the end backwards
        rev = (slice(None),) * self.axis + (slice(None, None, -1),)
        return self.be.xp.cumsum(gy[rev], axis=self.axis)[rev]


@register(method=True, top=True)
def cumsum(x: Tensor, dim: int) -> Tensor:
    """Running sums along dim."""
    return _along(CumSum, "cumsum", x, dim)
