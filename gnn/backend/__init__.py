"""Devices and backends: `get_backend("cpu" | "cuda[:N]")` returns the object that owns arrays
there (the interface it implements, and Device and parse_device: gnn/backend/base.py).

Only `gnn/backend/cuda.py` imports CuPy, and only when a CUDA backend is first asked for.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from gnn import config
from gnn.backend.base import Backend, Device, parse_device
from gnn.backend.numpy import NumpyBackend

__all__ = ["Backend", "Device", "NumpyBackend", "cuda_available", "get_backend", "parse_device"]

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


def _check_device(device: Any) -> str:
    """The canonical name of `device`, once its backend is known to work (for config)."""
    return str(get_backend(device).device)


config.check_device = _check_device


def cuda_available() -> bool:
    """True when CuPy is installed and sees at least one CUDA device."""
    from gnn.backend.cuda import device_count  # safe without CuPy: only the call imports it

    return importlib.util.find_spec("cupy") is not None and device_count() > 0
