"""torch.nn.modules.flatten: the same classes as gnn.nn."""

from __future__ import annotations

from gnn.nn.flatten import Flatten, Unflatten

__all__ = ["Flatten", "Unflatten"]
