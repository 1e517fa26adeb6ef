"""bias_gelu: gelu(x + bias) as one op, the bias add of a Linear fused into the GELU after it.

A Transformer's feed-forward block computes gelu(x @ W.T + b). On a GPU the fused op is one kernel
forward and two backward (gx; the bias gradient as deterministic column sums), against a bias add
plus GELU's several elementwise kernels each way. The math is gnn/backend/fused/gelu.py.
"""

from __future__ import annotations

from typing import Any

from gnn.backend.fused import gelu as fused_gelu
from gnn.ops._util import Configured
from gnn.ops.autocast import cast_inputs, compute_widened
from gnn.ops.elementwise import add, gelu
from gnn.ops.registry import register
from gnn.tensor import Tensor


@compute_widened
class BiasGelu(Configured):
    """y = gelu(x + bias (D,)) over the last dim; saves what the fused forward hands back."""

    spec: fused_gelu.GeluSpec  # the approximation, checked

    def forward(self, x: Any, bias: Any) -> Any:
        y, self.saved = fused_gelu.forward(self.be, x, bias, self.spec)
        return y

    def backward(self, gy: Any) -> Any:
        # the kernel may write the bias gradient into its home
        want = (*self.needs_input_grad, self.grad_home(1, gy.dtype))
        return fused_gelu.backward(self.be, gy, self.saved, self.spec, want)


@register()
def bias_gelu(x: Tensor, bias: Tensor | None, approximate: str = "none") -> Tensor:
    """gelu(x + bias), bias (D,) added along the last dim of x (..., D); one op, fused on a GPU.

    approximate is "none" (the erf form) or "tanh" (GPT-2's). A bias of another dtype or shape
    takes the unfused composite, which broadcasts and promotes as add() does.
    """
    spec = fused_gelu.GeluSpec(approximate)  # the argument check, before any work
    if bias is None:
        return gelu(x, approximate)
    x, bias = cast_inputs("linear", x, bias)  # the bias of a Linear: autocast it as one
    d = x.shape[-1] if x.ndim else None
    if bias.shape != (d,) or bias.dtype != x.dtype or bias.backend is not x.backend:
        return gelu(add(x, bias), approximate)
    return BiasGelu.apply(x, bias, spec=spec)
