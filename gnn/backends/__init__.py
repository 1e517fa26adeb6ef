"""gnn.backends: PyTorch's torch.backends switches, accepted so scripts that set them run.

Not to be confused with gnn.backend (the array backends). What each switch does here is in its
module's docstring: gnn uses neither cuDNN nor TF32, so most switches have nothing to change.
"""

from __future__ import annotations

from gnn.backends import cuda, cudnn, mps

__all__ = ["cuda", "cudnn", "mps"]
