"""gnn.utils.dlpack: from_dlpack and to_dlpack where torch.utils.dlpack has them."""

from __future__ import annotations

from gnn.dlpack import from_dlpack, to_dlpack

__all__ = ["from_dlpack", "to_dlpack"]
