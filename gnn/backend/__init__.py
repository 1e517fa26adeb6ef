"""Devices and backends: `get_backend("cpu" | "cuda[:N]")` returns the object that owns arrays
there (the interface it implements, and Device and parse_device: gnn/backend/base.py).

Only `gnn/backend/cuda.py` imports CuPy, and only when a CUDA backend is first asked for.
"""

from __future__ import annotations

import contextlib
import importlib.util
from typing import Any

from gnn import config
from gnn.backend import base
from gnn.backend.base import Backend, Device, get_default_device, parse_device
from gnn.backend.numpy import NumpyBackend

__all__ = [
    "Backend",
    "Device",
    "NumpyBackend",
    "cuda_available",
    "default_device",
    "get_backend",
    "get_default_device",
    "parse_device",
    "set_default_device",
]

CUDA_INSTALL_HINT = (
    "install the CUDA extra that matches your driver: pip install 'gnn[cuda12]' "
    "or pip install 'gnn[cuda13]'"
)


_cpu_backend = NumpyBackend()
_cuda_backends: dict[int, Any] = {}


def get_backend(device: Any = None) -> Backend:
    """The backend that owns arrays on `device` (created on first use)."""
    if device == "cpu" and type(device) is str:  # the common case, without parsing
        return _cpu_backend
    dev = parse_device(device)
    if dev.type == "cpu":
        return _cpu_backend
    index = dev.index or 0
    if index not in _cuda_backends:
        if importlib.util.find_spec("cupy") is None:
            raise RuntimeError(
                f"device {str(dev)!r} needs CuPy, which is not installed; " + CUDA_INSTALL_HINT
            )
        from gnn.backend.cuda import CupyBackend

        # raises a clear error where CuPy cannot load or there is no such GPU
        _cuda_backends[index] = CupyBackend(index)
    return _cuda_backends[index]


def set_default_device(device: Any) -> None:
    """Set the device of new tensors: "cpu", "cuda" or "cuda:N" (checked at once: its backend
    must work); None goes back to GNN_DEVICE's ("cpu" when it is not set)."""
    base._default_device = None if device is None else str(get_backend(device).device)


def default_device(device: Any) -> contextlib.AbstractContextManager[None]:
    """`with gnn.default_device("cuda"):` the default device inside the block."""
    return config._for_block(set_default_device, device, base._default_device)


def cuda_available() -> bool:
    """True when CuPy is installed and sees at least one CUDA device."""
    from gnn.backend.cuda import device_count  # safe without CuPy: only the call imports it

    return importlib.util.find_spec("cupy") is not None and device_count() > 0
