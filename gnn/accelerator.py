"""gnn.accelerator: PyTorch's device-agnostic accelerator queries (here: CUDA or none)."""

from __future__ import annotations

from gnn.backend import Device, cuda_available

__all__ = ["current_accelerator", "device_count", "is_available"]


def is_available() -> bool:
    """True when an accelerator (a CUDA GPU through CuPy) is usable."""
    return cuda_available()


def current_accelerator() -> Device | None:
    """device("cuda") when a GPU is usable, else None (as PyTorch on a CPU-only machine)."""
    return Device("cuda") if cuda_available() else None


def device_count() -> int:
    """The number of accelerators (CUDA GPUs) visible."""
    from gnn import cuda

    return cuda.device_count()
