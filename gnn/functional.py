"""gnn.functional (imported as F): every differentiable op, PyTorch-named.

The ops are written and registered in gnn/ops/ (gnn/ops/registry.py); this module is their
registered function names, read from the registry, and nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gnn.ops import registry

globals().update(registry.functions())
__all__ = sorted(registry.functions())

if TYPE_CHECKING:  # the names above are made at import time, where mypy cannot see them
    from typing import Any

    def __getattr__(name: str) -> Any: ...
