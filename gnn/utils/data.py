"""gnn.utils.data: the same module as gnn.data (`from gnn.utils.data import DataLoader` works).

This module puts gnn.data in its own place in sys.modules, so both names are one module.
"""

from __future__ import annotations

import sys

from gnn import data

sys.modules[__name__] = data
