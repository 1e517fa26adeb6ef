"""Flatten and Unflatten: reshape layers (views of the same elements)."""

from __future__ import annotations

import math
from typing import Any

from gnn import functional as F
from gnn.nn.module import Module
from gnn.tensor import Tensor


class Flatten(Module):
    """Merge dims start_dim..end_dim into one (by default all but the batch dim)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        return F.flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Split dim `dim` into `unflattened_size` (one entry may be -1)."""

    def __init__(self, dim: int, unflattened_size: Any) -> None:
        super().__init__()
        sizes = tuple(unflattened_size)
        if not sizes or any(not isinstance(s, int) or (s <= 0 and s != -1) for s in sizes):
            raise ValueError(
                "Unflatten: unflattened_size must be positive ints (one may be -1), "
                f"got {unflattened_size!r}"
            )
        self.dim, self.unflattened_size = dim, sizes

    def forward(self, x: Tensor) -> Tensor:
        d = self.dim + x.ndim if self.dim < 0 else self.dim
        if not 0 <= d < x.ndim:
            raise IndexError(
                f"Unflatten: dim {self.dim} is out of range for input of shape {x.shape}"
            )
        known = math.prod(s for s in self.unflattened_size if s != -1)
        n = x.shape[d]
        if (-1 not in self.unflattened_size and known != n) or (known and n % known):
            raise ValueError(
                f"Unflatten: cannot split dim {self.dim} of size {n} (input {x.shape}) into "
                f"{self.unflattened_size}"
            )
        return F.reshape(x, x.shape[:d] + self.unflattened_size + x.shape[d + 1 :])

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
