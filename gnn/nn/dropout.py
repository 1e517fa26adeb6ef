"""Dropout layer: zeroes elements with probability p in training mode, identity in eval mode."""

from __future__ import annotations

from gnn import functional as F
from gnn.nn.module import Module
from gnn.tensor import Tensor


def check_dropout(layer: str, p: float) -> float:
    """p as a float in [0, 1), or a ValueError naming the layer and the range."""
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
        raise ValueError(f"{layer}: dropout probability p must be in [0, 1), got {p!r}")
    return float(p)


class Dropout(Module):
    """Inverted dropout: kept elements are scaled by 1 / (1 - p) while training."""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        self.p = check_dropout("Dropout", p)
        self.inplace = inplace  # accepted for PyTorch compatibility; gnn never writes in place

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
