"""Dropout (inverted: kept elements are scaled by 1 / (1 - p) in training, identity otherwise)."""

from __future__ import annotations

from typing import Any

import numpy as np

from gnn.ops._util import Configured
from gnn.ops.registry import register
from gnn.tensor import Tensor


class Dropout(Configured):
    """x * mask, the mask 0 where an element is dropped and 1 / (1 - p) where it is kept."""

    mask: Any  # keep_mask's

    def forward(self, x: Any) -> Any:
        return x * self.mask

    def backward(self, gy: Any) -> Any:
        return gy * self.mask


@register()
def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability p and scale the rest by 1 / (1 - p) (training only)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    return Dropout.apply(x, mask=keep_mask(x._be, x.shape, x.dtype, p))


def keep_mask(be: Any, shape: tuple, dtype: Any, p: float) -> Any:
    """Inverted dropout's mask: 1 / (1 - p) where an element is kept (probability 1 - p), else 0."""
    keep = be.rand(shape, dtype) >= p
    return keep.astype(dtype) * np.dtype(dtype).type(1.0 / (1.0 - p))
