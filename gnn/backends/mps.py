"""torch.backends.mps: Apple's Metal backend, which gnn does not have (always unavailable)."""

from __future__ import annotations

__all__ = ["is_available", "is_built"]


def is_available() -> bool:
    """False: gnn runs on the CPU (NumPy) or NVIDIA GPUs (CuPy), not Metal."""
    return False


def is_built() -> bool:
    """False: gnn has no Metal backend."""
    return False
