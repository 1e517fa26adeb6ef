"""torch.nn.modules.container: the same classes as gnn.nn."""

from __future__ import annotations

from gnn.nn.container import ModuleDict, ModuleList, Sequential

__all__ = ["ModuleDict", "ModuleList", "Sequential"]
