"""torch.nn.modules.batchnorm: the same classes as gnn.nn."""

from __future__ import annotations

from gnn.nn.batchnorm import BatchNorm1d, BatchNorm2d

__all__ = ["BatchNorm1d", "BatchNorm2d"]
