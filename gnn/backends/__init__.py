"""gnn.backends: PyTorch's torch.backends switches, accepted so scripts that set them run.

Not to be confused with gnn.backend (the array backends). What each switch does here is in its
module's docstring: gnn uses neither cuDNN nor TF32, so most switches have nothing to change.
"""

from __future__ import annotations

from gnn.backends import cuda, cudnn, mps

__all__ = ["cuda", "cudnn", "get_float32_matmul_precision", "mps", "set_float32_matmul_precision"]

_matmul_precision = "highest"


def set_float32_matmul_precision(precision: str) -> None:
    """Accept torch.set_float32_matmul_precision: "highest", "high" or "medium" (recorded; gnn's
    float32 matmuls are always full float32, which is "highest")."""
    global _matmul_precision
    if precision not in ("highest", "high", "medium"):
        raise ValueError(
            f"set_float32_matmul_precision: expected 'highest', 'high' or 'medium', "
            f"got {precision!r}"
        )
    _matmul_precision = precision


def get_float32_matmul_precision() -> str:
    """The value last given to set_float32_matmul_precision ("highest" by default)."""
    return _matmul_precision
