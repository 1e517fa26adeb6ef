"""Layer normalisation over the trailing dims: one Function with a hand-written backward."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gnn.autograd import Function
from gnn.ops._util import column_sums
from gnn.ops.autocast import cast_inputs
from gnn.tensor import Tensor


class LayerNorm(Function):
    """y = (x - mean) / sqrt(var + eps) * weight + bias over the last `ndim` dims.

    Statistics are taken in float32 at least (float64 stays float64); backward needs only the
    normalised input xhat and 1/std, so the graph holds one array of x's size.
    """

    def __init__(self, ndim: int, eps: float, has_weight: bool, has_bias: bool) -> None:
        self.ndim, self.eps = ndim, eps
        self.has_weight, self.has_bias = has_weight, has_bias

    def forward(self, x: Any, *affine: Any) -> Any:
        xp = self.be.xp
        axes = tuple(range(x.ndim - self.ndim, x.ndim))
        acc = np.float64 if x.dtype == np.float64 else np.float32
        xa = x.astype(acc, copy=False)
        mean = xa.mean(axis=axes, keepdims=True)
        xc = xa - mean
        var = (xc * xc).mean(axis=axes, keepdims=True)
        rstd = 1.0 / xp.sqrt(var + self.eps)
        xc *= rstd  # now xhat
        self.xhat, self.rstd, self.axes = xc, rstd, axes
        w = affine[0] if self.has_weight else None
        b = affine[-1] if self.has_bias else None
        self.w = w
        y = xc * w if w is not None else xc.copy() if self.has_bias else xc
        if b is not None:
            y += b
        return y.astype(x.dtype, copy=False)

    def backward(self, gy: Any) -> Any:
        xhat, rstd, axes, w = self.xhat, self.rstd, self.axes, self.w
        acc = xhat.dtype
        g = gy.astype(acc, copy=False)
        lead = tuple(range(g.ndim - self.ndim))
        grads: list[Any] = []
        gx = None
        if self.needs_input_grad[0]:
            gxhat = g * w if w is not None else g
            m1 = gxhat.mean(axis=axes, keepdims=True)
            m2 = (gxhat * xhat).mean(axis=axes, keepdims=True)
            gx = gxhat - m1
            gx -= xhat * m2
            gx *= rstd
            gx = gx.astype(gy.dtype, copy=False)
        grads.append(gx)
        i = 1
        inner = g.shape[len(lead) :]

        def over_rows(a: Any) -> Any:  # the sum over the leading dims
            if not a.size:
                return a.sum(axis=lead)
            return column_sums(self.be, a.reshape(-1, math.prod(inner))).reshape(inner)

        if self.has_weight:
            gw = over_rows(g * xhat) if self.needs_input_grad[i] else None
            grads.append(None if gw is None else gw.astype(gy.dtype, copy=False))
            i += 1
        if self.has_bias:
            gb = over_rows(g) if self.needs_input_grad[i] else None
            grads.append(None if gb is None else gb.astype(gy.dtype, copy=False))
        return tuple(grads)


def layer_norm(
    input: Tensor,
    normalized_shape: Any,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise over the trailing `normalized_shape` dims, then scale by weight and add bias."""
    input, weight, bias = cast_inputs("layer_norm", input, weight, bias)
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    n = len(shape)
    if n == 0 or input.ndim < n or tuple(input.shape[input.ndim - n :]) != shape:
        raise ValueError(
            f"layer_norm: normalized_shape {shape} does not match the trailing dims of the input "
            f"of shape {input.shape}"
        )
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and tuple(p.shape) != shape:
            raise ValueError(
                f"layer_norm: {name} of shape {p.shape} does not match normalized_shape {shape}"
            )
    affine = [t for t in (weight, bias) if t is not None]
    return LayerNorm.apply(
        input,
        *affine,
        ndim=n,
        eps=float(eps),
        has_weight=weight is not None,
        has_bias=bias is not None,
    )
