"""Elementwise ops: arithmetic with broadcasting, unary math, activations, comparisons, where,
clamp.

Gradients of broadcast operands are summed back to their shapes by the engine, not here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gnn import config
from gnn.autograd import Function
from gnn.backend.fused import gelu as fused_gelu
from gnn.backend.fused import relu as fused_relu
from gnn.backend.fused import sigmoid as fused_sigmoid
from gnn.ops._util import Configured, as_tensor, cast_exact, check_broadcast, pair
from gnn.ops.registry import Fn, register
from gnn.tensor import Tensor

Formula = Callable[..., Any]  # a gradient formula on arrays, grad(xp, gy, *saved): see pointwise

# ---- arithmetic ----------------------------------------------------------------------------------


def _binary(fn: type[Function], name: str, a: Any, b: Any, alpha: Any = 1) -> Tensor:
    """fn applied to a and alpha * b (add's and sub's alpha), made Tensors on one device."""
    if alpha != 1:
        b = b * alpha  # a Tensor b: mul(b, alpha), in the graph
    a, b = pair(a, b)
    try:
        return fn.apply(a, b)
    except ValueError:
        check_broadcast(name, a, b)
        raise


def _update(x: Tensor, what: str, ufunc: str, other: Any) -> Tensor:
    """x = x <ufunc> other in place, outside the graph (other broadcasts to x's shape)."""
    x._check_inplace(what)
    if isinstance(other, Tensor):
        if other._be is not x._be:
            raise RuntimeError(f"{what}: other is on {other.device}, this tensor on {x.device}")
        other = other.array
    try:
        getattr(x._be.xp, ufunc)(x.array, other, out=x.array)
    except ValueError as exc:
        shape = getattr(other, "shape", ())
        raise ValueError(
            f"{what}: other of shape {tuple(shape)} does not broadcast to this tensor's "
            f"shape {x.shape}"
        ) from exc
    return x


def add_(x: Tensor, other: Any, alpha: Any = 1) -> Tensor:
    """x += alpha * other, in place (under gnn.no_grad() for tensors that need grad)."""
    return _update(x, "add_", "add", other if alpha == 1 else other * alpha)


def sub_(x: Tensor, other: Any, alpha: Any = 1) -> Tensor:
    """x -= alpha * other, in place."""
    return _update(x, "sub_", "subtract", other if alpha == 1 else other * alpha)


def mul_(x: Tensor, other: Any) -> Tensor:
    """x *= other, in place."""
    return _update(x, "mul_", "multiply", other)


def div_(x: Tensor, other: Any) -> Tensor:
    """x /= other, in place."""
    return _update(x, "div_", "divide", other)


def pointwise(
    name: str, function: str, grad: Formula, grad_b: Formula | None = None, saves: str = "x"
) -> type[Function]:
    """The Function of an elementwise op of one or two inputs: y = xp.<function>(*xs).

    grad(xp, gy, *s) is the (first) input's gradient, grad_b(xp, gy, *s) the second's; each is
    computed only when that input needs one (an operand that is a constant costs nothing in
    backward). s is the inputs xs (saves="x", free: the graph holds them anyway) or the output y
    alone (saves="y", when the gradient reads y).
    """
    keeps_y = saves == "y"

    class Pointwise(Function):
        def forward(self, *xs: Any) -> Any:
            y = getattr(self.be.xp, function)(*xs)
            self.saved = (y,) if keeps_y else xs
            return y

        def backward(self, gy: Any) -> Any:
            xp, s = self.be.xp, self.saved
            if grad_b is None:  # one input: backward runs only when it needs its gradient
                return grad(xp, gy, s[0])
            (a, b), needs = s, self.needs_input_grad
            ga = grad(xp, gy, a, b) if needs[0] else None
            return ga, grad_b(xp, gy, a, b) if needs[1] else None

    Pointwise.__name__ = Pointwise.__qualname__ = name
    return Pointwise


Add = pointwise("Add", "add", lambda xp, gy, a, b: gy, lambda xp, gy, a, b: gy)
Sub = pointwise("Sub", "subtract", lambda xp, gy, a, b: gy, lambda xp, gy, a, b: -gy)
Mul = pointwise("Mul", "multiply", lambda xp, gy, a, b: gy * b, lambda xp, gy, a, b: gy * a)
Div = pointwise(
    "Div", "divide", lambda xp, gy, a, b: gy / b, lambda xp, gy, a, b: -gy * a / (b * b)
)
# d/db reads log a: a must be positive where b needs a gradient
Pow = pointwise(
    "Pow",
    "power",
    lambda xp, gy, a, b: gy * b * a ** (b - 1),
    lambda xp, gy, a, b: gy * a**b * xp.log(xp.where(a > 0, a, 1)),
)


def _arithmetic(inplace: Callable[..., Tensor], *aliases: str) -> Callable[[Fn], Fn]:
    """register for an arithmetic op: Tensor.<op>, its in-place form, its operator and the
    reflected one (`__truediv__` and `__rtruediv__` for div), gnn.<op>, and `aliases`."""
    name = inplace.__name__.rstrip("_")
    dunder = "truediv" if name == "div" else name
    return register(
        method=True,
        operators=(f"__{dunder}__",),
        reflected=f"__r{dunder}__",
        tensor={inplace.__name__: inplace},
        aliases=aliases,
        top=True,
    )


@_arithmetic(add_)
def add(input: Any, other: Any, alpha: Any = 1) -> Tensor:
    """input + alpha * other with broadcasting."""
    return _binary(Add, "add", input, other, alpha)


@_arithmetic(sub_, "subtract")
def sub(input: Any, other: Any, alpha: Any = 1) -> Tensor:
    """input - alpha * other with broadcasting."""
    return _binary(Sub, "sub", input, other, alpha)


@_arithmetic(mul_, "multiply")
def mul(input: Any, other: Any) -> Tensor:
    """input * other with broadcasting."""
    return _binary(Mul, "mul", input, other)


@_arithmetic(div_, "divide", "true_divide")
def div(input: Any, other: Any, rounding_mode: str | None = None) -> Tensor:
    """input / other with broadcasting; true division (integers divide into the default float).

    rounding_mode "trunc" or "floor" rounds the quotient (no gradient, as PyTorch's is zero) and
    keeps integer inputs integer.
    """
    a, b = pair(input, other)
    if rounding_mode is not None:
        return _rounded_div(a, b, rounding_mode)
    if a.dtype.kind in "iub" and b.dtype.kind in "iub":
        dt = config.get_default_dtype()
        a, b = cast_exact(a, dt), cast_exact(b, dt)
    return _binary(Div, "div", a, b)


def _rounded_div(a: Tensor, b: Tensor, rounding_mode: str) -> Tensor:
    if rounding_mode not in ("trunc", "floor"):
        raise ValueError(
            f"div: rounding_mode must be None, 'trunc' or 'floor', got {rounding_mode!r}"
        )
    xp = a._be.xp
    if a.dtype.kind in "iub" and b.dtype.kind in "iub":
        if bool((b.array == 0).any()):
            raise ZeroDivisionError("div: integer division by zero")
        q = xp.floor_divide(a.array, b.array)
        if rounding_mode == "trunc":  # floor_divide rounds down: step negative quotients back up
            q = q + ((q < 0) & (q * b.array != a.array))
    else:
        q = (xp.trunc if rounding_mode == "trunc" else xp.floor)(xp.true_divide(a.array, b.array))
    return Tensor._make(q, a._be, False)


class PowScalar(Configured):
    """x ** p for a Python number p."""

    p: float

    def forward(self, x: Any) -> Any:
        self.x = x
        return x * x if self.p == 2 else x**self.p  # squares (the usual case) without a power

    def backward(self, gy: Any) -> Any:
        p, x = self.p, self.x
        return gy * (2 * x if p == 2 else p * x ** (p - 1))


@register(method=True, operators=("__pow__",), reflected="__rpow__", top=True)
def pow(input: Any, exponent: Any) -> Tensor:
    """input ** exponent; a Python-number exponent takes the cheaper path."""
    number = isinstance(exponent, (int, float)) and not isinstance(exponent, bool)
    if isinstance(input, Tensor) and number:
        return PowScalar.apply(input, p=exponent)
    return _binary(Pow, "pow", input, exponent)


# ---- unary math ----------------------------------------------------------------------------------


def unary_op(fn: type[Function], doc: str, **spellings: Any) -> Callable[[Tensor], Tensor]:
    """Register fn.apply as the op of one tensor named fn.__name__ in lower case: `doc` is its
    docstring; it is a Tensor method and gnn.<name> too unless `spellings` (register's) say not."""

    def op(x: Tensor) -> Tensor:
        return fn.apply(x)

    spellings = {"method": True, "top": True, **spellings}
    return register(name=fn.__name__.lower(), doc=doc, **spellings)(op)


Neg = pointwise("Neg", "negative", lambda xp, gy, x: -gy)
neg = unary_op(Neg, "-x.", operators=("__neg__",), aliases=("negative",))
Exp = pointwise("Exp", "exp", lambda xp, gy, y: gy * y, saves="y")
exp = unary_op(Exp, "e ** x, elementwise.")
Log = pointwise("Log", "log", lambda xp, gy, x: gy / x)
log = unary_op(Log, "Natural logarithm, elementwise.")
Sqrt = pointwise("Sqrt", "sqrt", lambda xp, gy, y: gy / (2 * y), saves="y")
sqrt = unary_op(Sqrt, "Square root, elementwise.")
Abs = pointwise("Abs", "abs", lambda xp, gy, x: gy * xp.sign(x))
abs = unary_op(Abs, "|x| (gradient 0 at 0).", operators=("__abs__",), aliases=("absolute",))
Clone = pointwise("Clone", "copy", lambda xp, gy, x: gy)
clone = unary_op(Clone, "A copy of x that stays in the graph.")


# ---- activations ---------------------------------------------------------------------------------


Tanh = pointwise("Tanh", "tanh", lambda xp, gy, y: gy * (1 - y * y), saves="y")
tanh = unary_op(Tanh, "Hyperbolic tangent, elementwise.")


class Sigmoid(Function):
    """Fused on both backends: forward saves only the output y; backward is one pass."""

    def forward(self, x: Any) -> Any:
        self.y = fused_sigmoid.forward(self.be, x)
        return self.y

    def backward(self, gy: Any) -> Any:
        return fused_sigmoid.backward(self.be, self.y, gy)


sigmoid = unary_op(Sigmoid, "1 / (1 + e^-x), elementwise.")


class Relu(Function):
    """max(x, 0), saving y; backward through the fused entry point (one kernel on a GPU)."""

    def forward(self, x: Any) -> Any:
        self.y = y = self.be.xp.maximum(x, 0)
        return y

    def backward(self, gy: Any) -> Any:
        be = self.be
        if be.name == "cuda":
            return fused_relu.backward(be, self.y, gy)
        return fused_relu.reference_backward(be.xp, self.y, gy)  # no dispatch cost on the CPU


relu = unary_op(Relu, "max(x, 0), elementwise.")


class LeakyRelu(Configured):
    slope: float  # negative_slope

    def forward(self, x: Any) -> Any:
        self.mask = x > 0
        return self.be.xp.where(self.mask, x, x * self.slope)

    def backward(self, gy: Any) -> Any:
        return self.be.xp.where(self.mask, gy, gy * self.slope)


@register()
def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """x where x > 0, else negative_slope * x."""
    return LeakyRelu.apply(x, slope=negative_slope)


class Gelu(Configured):
    """x * Phi(x); approximate="tanh" uses 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).

    gnn/backend/fused/gelu.py without a bias: its reference on the CPU (in-place chains on one or
    two buffers, as GELU runs on the widest activations), one kernel each way on a GPU.
    """

    approximate: str  # read by the ONNX export
    spec: fused_gelu.GeluSpec  # the same, for the fused unit

    def forward(self, x: Any) -> Any:
        y, self.saved = fused_gelu.forward(self.be, x, None, self.spec)
        return y

    def backward(self, gy: Any) -> Any:
        return fused_gelu.backward(self.be, gy, self.saved, self.spec, (True, False))[0]


@register()
def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """Gaussian error linear unit; approximate is "none" (erf) or "tanh"."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return Gelu.apply(x, approximate=approximate, spec=fused_gelu.GeluSpec(approximate))


# ---- selection -----------------------------------------------------------------------------------


class Where(Configured):
    cond: Any  # a bool array

    def forward(self, a: Any, b: Any) -> Any:
        return self.be.xp.where(self.cond, a, b)

    def backward(self, gy: Any) -> Any:
        xp = self.be.xp
        ga = xp.where(self.cond, gy, 0) if self.needs_input_grad[0] else None
        gb = xp.where(self.cond, 0, gy) if self.needs_input_grad[1] else None
        return ga, gb


def _where_method(x: Tensor, condition: Any, other: Any) -> Tensor:
    """x where condition holds, else other (Tensor.where, as in PyTorch)."""
    return where(condition, x, other)


@register(tensor={"where": _where_method}, top=True)
def where(condition: Any, a: Any, b: Any) -> Tensor:
    """Elements of a where condition holds, else of b (all three broadcast)."""
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):  # they give the device and dtype
        raise TypeError("where: expected at least one of a and b to be a Tensor")
    a, b = pair(a, b)
    cond = as_tensor(condition, a)
    if cond._be is not a._be:
        raise RuntimeError(f"where: condition is on {cond.device}, values on {a.device}")
    try:
        return Where.apply(a, b, cond=cond.array if cond.dtype.kind == "b" else cond.array != 0)
    except ValueError:
        for p, q in ((a, b), (cond, a), (cond, b)):
            check_broadcast("where", p, q)
        raise


class Clamp(Configured):
    lo: Any  # a number or None (no lower bound)
    hi: Any

    def forward(self, x: Any) -> Any:
        self.x = x
        return self.be.xp.clip(x, self.lo, self.hi)

    def backward(self, gy: Any) -> Any:
        x, lo, hi = self.x, self.lo, self.hi
        if lo is None or hi is None:  # one bound, one comparison
            return gy * (x <= hi if lo is None else x >= lo)
        return gy * ((x >= lo) & (x <= hi))


def clamp_(x: Tensor, min: Any = None, max: Any = None) -> Tensor:
    """x clamped to [min, max], in place."""
    if min is None and max is None:
        raise ValueError("clamp_: give min, max or both")
    if min is not None:
        _update(x, "clamp_", "maximum", min)
    if max is not None:
        _update(x, "clamp_", "minimum", max)
    return x


@register(method=True, tensor={"clamp_": clamp_}, aliases=("clip",), top=True)
def clamp(x: Tensor, min: Any = None, max: Any = None) -> Tensor:
    """x limited to [min, max] (either bound may be None); gradient 1 inside, 0 where clipped."""
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    return Clamp.apply(x, lo=min, hi=max)


@register(method=True, top=True)
def masked_fill(x: Tensor, mask: Any, value: float) -> Tensor:
    """x with `value` where mask is True (mask broadcasts against x)."""
    return where(mask, as_tensor(value, x), x)


# ---- comparisons (no gradient) -------------------------------------------------------------------


def _compare(name: str, a: Any, b: Any) -> Tensor:
    a, b = pair(a, b)
    if a._be is not b._be:
        raise RuntimeError(f"{name}: inputs are on different devices ({a.device} and {b.device})")
    try:
        return Tensor._make(getattr(a._be.xp, name)(a.array, b.array), a._be, False)
    except ValueError:
        check_broadcast(name, a, b)
        raise


def _comparison(name: str, ufunc: str, symbol: str, *aliases: str) -> Callable[..., Tensor]:
    def op(input: Any, other: Any) -> Tensor:
        return _compare(ufunc, input, other)  # looked up per call: gnn.onnx traces it

    doc = f"input {symbol} other, elementwise (bool tensor)."
    operators = (f"__{name}__",)
    return register(
        name=name, doc=doc, method=True, operators=operators, aliases=aliases, top=True
    )(op)


eq = _comparison("eq", "equal", "==")
ne = _comparison("ne", "not_equal", "!=", "not_equal")
lt = _comparison("lt", "less", "<", "less")
le = _comparison("le", "less_equal", "<=", "less_equal")
gt = _comparison("gt", "greater", ">", "greater")
ge = _comparison("ge", "greater_equal", ">=", "greater_equal")
