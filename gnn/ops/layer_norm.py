"""Layer normalisation over the trailing dims: one Function with a hand-written backward."""

from __future__ import annotations

import math
from typing import Any

from gnn.autograd import Function
from gnn.backend.fused import layer_norm as fused_layer_norm
from gnn.ops.autocast import cast_inputs
from gnn.ops.registry import register
from gnn.tensor import Tensor


class LayerNorm(Function):
    """y = (x - mean) / sqrt(var + eps) * weight + bias over the last `ndim` dims.

    gnn/backend/fused/layer_norm.py does the work on (rows, normalised size) views: its reference,
    and on the GPU the kernels of kernels/layer_norm.cu (one launch forward, at most two backward).
    Statistics are float32 at least (float64 stays float64).
    """

    def __init__(self, ndim: int, eps: float, has_weight: bool, has_bias: bool) -> None:
        self.ndim, self.eps = ndim, eps
        self.has_weight, self.has_bias = has_weight, has_bias

    def forward(self, x: Any, *affine: Any) -> Any:
        self.shape, inner = x.shape, x.shape[x.ndim - self.ndim :]
        d = math.prod(inner)
        w = affine[0].reshape(d) if self.has_weight else None
        b = affine[-1].reshape(d) if self.has_bias else None
        x2 = x.reshape(-1, d)
        y, self.saved = fused_layer_norm.forward(self.be, x2, w, b, self.eps)
        # the reference saves xhat; the kernels save only the statistics and read x again
        self.x = x2 if self.saved.xhat is None else None
        self.w, self.inner = w, inner
        return y.reshape(x.shape)

    def backward(self, gy: Any) -> Any:
        needs = self.needs_input_grad
        # the weight's and bias's slots in a flat gradient buffer, if any, and their (D,) views
        hw = self.grad_home(1, gy.dtype) if self.has_weight else None
        hb = self.grad_home(len(needs) - 1, gy.dtype) if self.has_bias else None
        ow, ob = (None if h is None else h.reshape(-1) for h in (hw, hb))
        wanted = fused_layer_norm.Needs(
            needs[0], self.has_weight and needs[1], self.has_bias and needs[-1], ow, ob
        )
        gx, gw, gb = fused_layer_norm.backward(
            self.be, self.x, gy.reshape(-1, math.prod(self.inner)), self.saved, self.w, wanted
        )
        grads = [None if gx is None else gx.reshape(self.shape)]
        for has, g, home, out in ((self.has_weight, gw, hw, ow), (self.has_bias, gb, hb, ob)):
            if has:
                grads.append(None if g is None else home if g is out else g.reshape(self.inner))
        return tuple(grads)


@register()
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
    return LayerNorm.apply(
        input,
        *(t for t in (weight, bias) if t is not None),
        ndim=n,
        eps=float(eps),
        has_weight=weight is not None,
        has_bias=bias is not None,
    )
