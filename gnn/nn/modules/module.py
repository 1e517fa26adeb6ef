"""torch.nn.modules.module: the same classes as gnn.nn."""

from __future__ import annotations

from gnn.nn.module import Module

__all__ = ["Module"]
