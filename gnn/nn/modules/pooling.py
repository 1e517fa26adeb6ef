"""torch.nn.modules.pooling: the same classes as gnn.nn."""

from __future__ import annotations

from gnn.nn.pooling import AvgPool2d, MaxPool2d

__all__ = ["AvgPool2d", "MaxPool2d"]
