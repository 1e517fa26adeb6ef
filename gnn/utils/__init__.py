"""gnn.utils: where PyTorch scripts look for `utils.data` (gnn.data itself) and `utils.dlpack`."""

from __future__ import annotations

from gnn.utils import data, dlpack

__all__ = ["data", "dlpack"]
