"""gnn.cuda: PyTorch's torch.cuda helpers that training scripts call (availability, seeds, sync).

Every GPU fact comes from gnn.backend (the only layer that knows CuPy); with no GPU these answer
as PyTorch does on a CPU-only machine: not available, no devices, seeds ignored.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from gnn.backend import Device, cuda_available, get_backend, parse_device

__all__ = [
    "current_device", "device_count", "is_available", "is_bf16_supported", "manual_seed",
    "manual_seed_all", "set_device", "synchronize",
]  # fmt: skip

_current = 0  # the index "cuda" means for set_device/current_device


def is_available() -> bool:
    """True when CuPy is installed and sees at least one CUDA GPU."""
    return cuda_available()


def device_count() -> int:
    """The number of CUDA GPUs CuPy sees (0 without CuPy or a driver)."""
    if importlib.util.find_spec("cupy") is None:
        return 0
    from gnn.backend.cuda import device_count as count

    return count()


def current_device() -> int:
    """The index of the GPU selected by set_device (0 unless changed)."""
    return _current


def set_device(device: Any) -> None:
    """Select the GPU that current_device() reports (an index, "cuda:N" or a device)."""
    global _current
    index = device if isinstance(device, int) and not isinstance(device, bool) else None
    if index is None:
        dev = parse_device(device)
        if dev.type != "cuda":
            raise ValueError(f"set_device: expected a CUDA device, got {device!r}")
        index = dev.index or 0
    if not 0 <= index < device_count():
        raise RuntimeError(f"set_device: no CUDA device {index} ({device_count()} visible)")
    _current = index


def _indices(device: Any) -> list[int]:
    if device is None:
        return [_current]
    if isinstance(device, int) and not isinstance(device, bool):
        return [device]
    dev = device if isinstance(device, Device) else parse_device(device)
    if dev.type != "cuda":
        raise ValueError(f"expected a CUDA device, got {device!r}")
    return [dev.index or 0]


def manual_seed(seed: int) -> None:
    """Seed the current GPU's generator; ignored without a GPU (as in PyTorch)."""
    if is_available():
        get_backend(f"cuda:{_current}").manual_seed(int(seed))


def manual_seed_all(seed: int) -> None:
    """Seed every GPU's generator; ignored without a GPU (as in PyTorch)."""
    for i in range(device_count()):
        get_backend(f"cuda:{i}").manual_seed(int(seed))


def synchronize(device: Any = None) -> None:
    """Wait until the GPU (the current one by default) has finished its queued work."""
    for i in _indices(device):
        get_backend(f"cuda:{i}").synchronize()  # a clear error when there is no such GPU


def is_bf16_supported() -> bool:
    """False: CuPy has no bfloat16 arrays, so gnn cannot compute in bfloat16 on a GPU (gnn.bfloat16
    exists on the CPU); scripts that choose their dtype by this pick float16 or float32."""
    return False
