"""Matrix products: matmul (batched, broadcasting, 1-D cases as in NumPy/PyTorch) and linear."""

from __future__ import annotations

from typing import Any

from gnn.autograd import Function
from gnn.ops._util import column_sums, pair
from gnn.ops.autocast import cast_inputs, compute_widened
from gnn.ops.registry import register
from gnn.ops.shape import reshape, unsqueeze
from gnn.tensor import Tensor


@compute_widened
class MatMul(Function):
    """a @ b for operands of at least 2 dims (matmul() promotes 1-D ones around it)."""

    def forward(self, a: Any, b: Any) -> Any:
        self.a, self.b = a, b
        return a @ b

    def backward(self, gy: Any) -> Any:
        xp = self.be.xp
        ga = gy @ xp.swapaxes(self.b, -1, -2) if self.needs_input_grad[0] else None
        gb = xp.swapaxes(self.a, -1, -2) @ gy if self.needs_input_grad[1] else None
        return ga, gb  # batch dims that were broadcast are summed by the engine


@register(method=True, operators=("__matmul__",), reflected="__rmatmul__", top=True)
def matmul(input: Any, other: Any) -> Tensor:
    """Matrix product with NumPy's rules: batched over leading dims, which broadcast."""
    a, b = cast_inputs("matmul", *pair(input, other))
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need at least 1 dim, got {a.shape} @ {b.shape}")
    k_b = b.shape[0] if b.ndim == 1 else b.shape[-2]  # b's rows
    if a.shape[-1] != k_b:
        raise ValueError(f"matmul: {a.shape} @ {b.shape}: inner dims {a.shape[-1]} != {k_b}")
    if a.ndim == 1 or b.ndim == 1:
        # (n,) @ (..., n, m): a row vector; (..., m, n) @ (n,): a column vector; both: a dot
        # product. The product's shape leaves out the dims added: a's rows, b's columns.
        out = matmul(unsqueeze(a, 0) if a.ndim == 1 else a, unsqueeze(b, -1) if b.ndim == 1 else b)
        return reshape(out, out.shape[:-2] + a.shape[-2:-1] + (b.shape[-1:] if b.ndim > 1 else ()))
    try:
        return MatMul.apply(a, b)
    except ValueError:
        raise ValueError(
            f"matmul: {a.shape} @ {b.shape}: batch dims {a.shape[:-2]} and {b.shape[:-2]} "
            "do not broadcast"
        ) from None


def _rows(a: Any) -> Any:
    """a as a matrix of its last dim's rows: itself when 2-D (a reshape costs more than the ask)."""
    return a if a.ndim == 2 else a.reshape(-1, a.shape[-1])


@compute_widened
class Linear(Function):
    """y = x @ W.T + b over the last dim of x; one Function so a layer costs one graph node."""

    def forward(self, x: Any, w: Any, b: Any = None) -> Any:
        self.x, self.w = x, w
        y = _rows(x) @ w.T
        if b is not None:
            y += b
        return y if x.ndim == 2 else y.reshape(x.shape[:-1] + (w.shape[0],))

    def backward(self, gy: Any) -> Any:
        x, w, needs = self.x, self.w, self.needs_input_grad
        g2 = _rows(gy)
        gx = (g2 @ w).reshape(x.shape) if needs[0] else None
        gw = gb = None
        if needs[1]:
            x2 = _rows(x)
            home = self.grad_home(1, g2.dtype)  # the weight's slot in a flat gradient buffer
            gw = g2.T @ x2 if home is None else self.be.xp.matmul(g2.T, x2, out=home)
        if len(needs) > 2 and needs[2]:
            gb = column_sums(self.be, g2, self.grad_home(2, g2.dtype))
        return gx, gw, gb


@register()
def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x @ weight.T + bias, weight of shape (out_features, in_features) as in PyTorch."""
    if x.ndim == 0 or x.shape[-1] != weight.shape[-1]:
        raise ValueError(
            f"linear: input of shape {x.shape} has {x.shape[-1] if x.ndim else 0} features, "
            f"weight {weight.shape} expects {weight.shape[-1]}"
        )
    x, weight, bias = cast_inputs("linear", x, weight, bias)
    return Linear.apply(x, weight) if bias is None else Linear.apply(x, weight, bias)


def _check_ndim(op: str, ndim: int, a: Any, b: Any) -> None:
    if getattr(a, "ndim", None) != ndim or getattr(b, "ndim", None) != ndim:
        shapes = f"{getattr(a, 'shape', a)} and {getattr(b, 'shape', b)}"
        raise ValueError(f"{op}: both operands must be {ndim}-D, got shapes {shapes}")


@register(method=True, top=True)
def mm(a: Tensor, b: Tensor) -> Tensor:
    """The product of two matrices, (n, k) @ (k, m); no broadcasting (see matmul for that)."""
    _check_ndim("mm", 2, a, b)
    return matmul(a, b)


@register(method=True, top=True)
def bmm(a: Tensor, b: Tensor) -> Tensor:
    """Batched matrix products, (B, n, k) @ (B, k, m), with equal batch sizes (no broadcasting)."""
    _check_ndim("bmm", 3, a, b)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"bmm: batch sizes differ: {a.shape} and {b.shape}")
    return matmul(a, b)
