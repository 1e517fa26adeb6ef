"""torch.backends.cudnn switches: accepted, with nothing to change (gnn does not use cuDNN).

gnn's convolutions are its own code, so there is no cuDNN algorithm search for `benchmark` to
turn on; `deterministic` is accepted and recorded, and changes nothing.
"""

from __future__ import annotations

enabled = True
benchmark = False
deterministic = False
allow_tf32 = False  # gnn never uses TF32 for convolutions


def is_available() -> bool:
    """False: gnn does not use cuDNN (its GPU convolutions are its own)."""
    return False


def version() -> None:
    """None: no cuDNN is loaded."""
    return None


__all__ = ["allow_tf32", "benchmark", "deterministic", "enabled", "is_available", "version"]
