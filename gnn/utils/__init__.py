"""gnn.utils: where PyTorch scripts look for `utils.data` (an alias of gnn.data)."""

from __future__ import annotations

from gnn.utils import data

__all__ = ["data"]
