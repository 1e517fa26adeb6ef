"""torch.nn.modules.dropout: the same classes as gnn.nn."""

from __future__ import annotations

from gnn.nn.dropout import Dropout

__all__ = ["Dropout"]
