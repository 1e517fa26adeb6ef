"""torch.nn.modules.linear: the same classes as gnn.nn."""

from __future__ import annotations

from gnn.nn.linear import Identity, Linear

__all__ = ["Identity", "Linear"]
