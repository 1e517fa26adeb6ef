"""Devices and backends: `get_backend("cpu" | "cuda[:N]")` returns the object that owns arrays
there (the interface it implements: gnn/backend/base.py).

Only `gnn/backend/cuda.py` imports CuPy, and only when a CUDA backend is first asked for.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

from gnn import config
from gnn.backend.base import Backend
from gnn.backend.numpy import NumpyBackend

__all__ = ["Backend", "Device", "NumpyBackend", "cuda_available", "get_backend", "parse_device"]

CUDA_INSTALL_HINT = (
    "install the CUDA extra that matches your driver: pip install 'gnn[cuda12]' "
    "or pip install 'gnn[cuda13]'"
)


def _split_name(name: Any, source: str = "") -> tuple[str, int | None]:
    """("cpu", None) or ("cuda", N) for "cpu", "cuda", "gpu" or "cuda:N" (any case, padded);
    a ValueError otherwise (a non-string too), `source` saying where the name came from."""
    text = name.strip().lower() if isinstance(name, str) else ""
    if text == "cpu":
        return "cpu", None
    kind, _, number = text.partition(":")
    if text in ("cuda", "gpu") or (kind == "cuda" and number.isdigit()):
        return "cuda", int(number or 0)
    raise ValueError(f"unknown device {name!r}{source}; expected 'cpu', 'cuda' or 'cuda:N'")


@dataclass(frozen=True)
class Device:
    """A device: type "cpu" or "cuda", and for cuda the GPU index."""

    type: str
    index: int | None = None

    def __post_init__(self) -> None:
        # Device("cuda:1") and Device("cuda", 1) both work, as torch.device does.
        if not isinstance(self.type, str):
            raise TypeError(f"device(): type must be a string, got {type(self.type).__name__}")
        if self.type not in ("cpu", "cuda"):
            kind, index = _split_name(self.type)
            if self.index is not None and index not in (None, self.index):
                raise ValueError(f"device(): {self.type!r} already names an index")
            object.__setattr__(self, "type", kind)
            object.__setattr__(self, "index", index if self.index is None else self.index)
        if self.index is not None and (type(self.index) is not int or self.index < 0):  # not bool
            raise ValueError(f"device(): index must be an integer >= 0, got {self.index!r}")
        if self.type == "cpu":
            if self.index:  # an index checked above: only 0 (or none) names the CPU
                raise ValueError(f"device(): the CPU has no index {self.index}")
            object.__setattr__(self, "index", None)

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        return f"device({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            try:
                other = parse_device(other)
            except ValueError:
                return False
        if not isinstance(other, Device):
            return NotImplemented
        # "cuda" means the current GPU (index 0 here), as a user comparing with "cuda" expects.
        return self.type == other.type and (self.index or 0) == (other.index or 0)

    def __hash__(self) -> int:
        return hash((self.type, self.index or 0))


def parse_device(device: Any) -> Device:
    """Parse "cpu", "cuda", "cuda:1", a Device, or None (the default device)."""
    if device is None:  # set_default_device checks its argument: a bad default is GNN_DEVICE's
        source = " (the default device, from the GNN_DEVICE environment variable)"
        return Device(*_split_name(config.get_default_device(), source))
    if isinstance(device, Device):
        return device
    if hasattr(device, "device") and isinstance(device.device, Device):  # a Tensor
        return device.device
    return Device(*_split_name(device))


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
