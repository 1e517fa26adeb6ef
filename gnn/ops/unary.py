"""More elementwise math, PyTorch-named: sin, cos, log1p, expm1, softplus, silu, square, rsqrt,
reciprocal; and sign, floor, ceil, round, isnan, isfinite, which have no gradient here (PyTorch's
is zero), so their results do not require grad.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gnn.backend.fused import sigmoid as fused_sigmoid
from gnn.ops._util import Configured
from gnn.ops.elementwise import mul, pointwise, pow, sigmoid, unary_op
from gnn.ops.registry import register
from gnn.tensor import Tensor

Sin = pointwise("Sin", "sin", lambda xp, gy, x: gy * xp.cos(x))
sin = unary_op(Sin, "Sine, elementwise (radians).")
Cos = pointwise("Cos", "cos", lambda xp, gy, x: -(gy * xp.sin(x)))
cos = unary_op(Cos, "Cosine, elementwise (radians).")
Log1p = pointwise("Log1p", "log1p", lambda xp, gy, x: gy / (1 + x))
log1p = unary_op(Log1p, "log(1 + x), accurate for small x.")
Expm1 = pointwise("Expm1", "expm1", lambda xp, gy, y: gy * (y + 1), saves="y")
expm1 = unary_op(Expm1, "exp(x) - 1, accurate for small x.")


class Softplus(Configured):
    """log(1 + exp(beta x)) / beta, linear where beta x > threshold (as in PyTorch)."""

    beta: float
    threshold: float

    def forward(self, x: Any) -> Any:
        xp = self.be.xp
        self.z = z = x * self.beta if self.beta != 1 else x
        y = xp.logaddexp(z, 0)  # log(1 + e^z) without overflow
        if self.beta != 1:
            y /= self.beta
        return xp.where(z > self.threshold, x, y)

    def backward(self, gy: Any) -> Any:
        slope = fused_sigmoid.forward(self.be, self.z)
        return gy * self.be.xp.where(self.z > self.threshold, 1, slope)


@register()
def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta * x)) / beta; x itself where beta * x > threshold."""
    if not beta > 0:
        raise ValueError(f"softplus: beta must be > 0, got {beta!r}")
    return Softplus.apply(x, beta=float(beta), threshold=float(threshold))


@register()
def silu(x: Tensor) -> Tensor:
    """x * sigmoid(x) (also called swish)."""
    return mul(x, sigmoid(x))


def _power(name: str, p: float, doc: str) -> Callable[[Tensor], Tensor]:
    def op(x: Tensor) -> Tensor:
        return pow(x, p)

    return register(name=name, doc=doc, method=True, top=True)(op)


square = _power("square", 2, "x ** 2, elementwise.")
rsqrt = _power("rsqrt", -0.5, "1 / sqrt(x), elementwise.")
reciprocal = _power("reciprocal", -1, "1 / x, elementwise.")


def _no_grad(name: str, x: Tensor) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a Tensor, got {type(x).__name__}")
    return Tensor._make(getattr(x._be.xp, name)(x.array), x._be, False)


def _without_grad(name: str, doc: str) -> Callable[[Tensor], Tensor]:
    def op(x: Tensor) -> Tensor:
        return _no_grad(name, x)  # looked up per call: gnn.onnx traces it

    return register(name=name, doc=doc, method=True, top=True)(op)


sign = _without_grad("sign", "-1, 0 or 1 by the sign of each element.")
floor = _without_grad("floor", "The largest integer <= x, elementwise (same dtype).")
ceil = _without_grad("ceil", "The smallest integer >= x, elementwise (same dtype).")
round = _without_grad("round", "x rounded to the nearest integer, halves to even (as NumPy).")
isnan = _without_grad("isnan", "True where x is NaN (bool tensor).")
isfinite = _without_grad("isfinite", "True where x is neither infinite nor NaN (bool tensor).")
