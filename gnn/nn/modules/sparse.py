"""torch.nn.modules.sparse: the same classes as gnn.nn."""

from __future__ import annotations

from gnn.nn.embedding import Embedding

__all__ = ["Embedding"]
