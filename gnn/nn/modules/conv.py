"""torch.nn.modules.conv: the same classes as gnn.nn."""

from __future__ import annotations

from gnn.nn.conv import Conv2d, ConvTranspose2d

__all__ = ["Conv2d", "ConvTranspose2d"]
