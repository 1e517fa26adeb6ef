"""gnn.nn.functional: the same module as gnn.functional (`import gnn.nn.functional as F` works).

This module puts gnn.functional in its own place in sys.modules, so both names are one module
and every op added to gnn.functional is here too.
"""

from __future__ import annotations

import sys

from gnn import functional

sys.modules[__name__] = functional
