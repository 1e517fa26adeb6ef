"""torch.nn.modules.normalization: the same classes as gnn.nn."""

from __future__ import annotations

from gnn.nn.normalization import LayerNorm

__all__ = ["LayerNorm"]
