"""More elementwise math, PyTorch-named: sin, cos, log1p, expm1, softplus, silu, square, rsqrt,
reciprocal; and sign, floor, ceil, round, isnan, isfinite, which have no gradient here (PyTorch's
is zero), so their results do not require grad.
"""

from __future__ import annotations

from typing import Any

from gnn.autograd import Function
from gnn.backend.fused import sigmoid as fused_sigmoid
from gnn.ops.elementwise import mul, pointwise, pow, sigmoid
from gnn.ops.registry import register
from gnn.tensor import Tensor

Sin = pointwise("Sin", lambda xp, x: xp.sin(x), lambda xp, gy, x: gy * xp.cos(x))


@register(method=True, top=True)
def sin(x: Tensor) -> Tensor:
    """Sine, elementwise (radians)."""
    return Sin.apply(x)


Cos = pointwise("Cos", lambda xp, x: xp.cos(x), lambda xp, gy, x: -(gy * xp.sin(x)))


@register(method=True, top=True)
def cos(x: Tensor) -> Tensor:
    """Cosine, elementwise (radians)."""
    return Cos.apply(x)


Log1p = pointwise("Log1p", lambda xp, x: xp.log1p(x), lambda xp, gy, x: gy / (1 + x))


@register(method=True, top=True)
def log1p(x: Tensor) -> Tensor:
    """log(1 + x), accurate for small x."""
    return Log1p.apply(x)


Expm1 = pointwise("Expm1", lambda xp, x: xp.expm1(x), lambda xp, gy, y: gy * (y + 1), saves="y")


@register(method=True, top=True)
def expm1(x: Tensor) -> Tensor:
    """exp(x) - 1, accurate for small x."""
    return Expm1.apply(x)


class Softplus(Function):
    """log(1 + exp(beta x)) / beta, linear where beta x > threshold (as in PyTorch)."""

    def __init__(self, beta: float, threshold: float) -> None:
        self.beta, self.threshold = beta, threshold

    def forward(self, x: Any) -> Any:
        xp = self.be.xp
        self.z = z = x * self.beta if self.beta != 1 else x
        y = xp.logaddexp(z, 0)  # log(1 + e^z) without overflow
        if self.beta != 1:
            y /= self.beta
        return xp.where(z > self.threshold, x, y)

    def backward(self, gy: Any) -> Any:
        xp = self.be.xp
        slope = fused_sigmoid.forward(self.be, self.z)
        return gy * xp.where(self.z > self.threshold, 1, slope)


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


@register(method=True, top=True)
def square(x: Tensor) -> Tensor:
    """x ** 2, elementwise."""
    return pow(x, 2)


@register(method=True, top=True)
def rsqrt(x: Tensor) -> Tensor:
    """1 / sqrt(x), elementwise."""
    return pow(x, -0.5)


@register(method=True, top=True)
def reciprocal(x: Tensor) -> Tensor:
    """1 / x, elementwise."""
    return pow(x, -1)


def _no_grad(name: str, x: Tensor) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a Tensor, got {type(x).__name__}")
    return Tensor._make(getattr(x._be.xp, name)(x.array), x._be, False)


@register(method=True, top=True)
def sign(x: Tensor) -> Tensor:
    """-1, 0 or 1 by the sign of each element."""
    return _no_grad("sign", x)


@register(method=True, top=True)
def floor(x: Tensor) -> Tensor:
    """The largest integer <= x, elementwise (same dtype)."""
    return _no_grad("floor", x)


@register(method=True, top=True)
def ceil(x: Tensor) -> Tensor:
    """The smallest integer >= x, elementwise (same dtype)."""
    return _no_grad("ceil", x)


@register(method=True, top=True)
def round(x: Tensor) -> Tensor:  # PyTorch's name, shadowing the builtin in this module
    """x rounded to the nearest integer, halves to even (as PyTorch and NumPy do)."""
    return _no_grad("round", x)


@register(method=True, top=True)
def isnan(x: Tensor) -> Tensor:
    """True where x is NaN (bool tensor)."""
    return _no_grad("isnan", x)


@register(method=True, top=True)
def isfinite(x: Tensor) -> Tensor:
    """True where x is neither infinite nor NaN (bool tensor)."""
    return _no_grad("isfinite", x)
