"""DLPack exchange: gnn.from_dlpack(obj) and gnn.to_dlpack(tensor), zero-copy with NumPy,
PyTorch, CuPy, JAX and any other library that speaks the protocol (Tensor.__dlpack__ is the
other direction)."""

from __future__ import annotations

from typing import Any

from gnn.backend import get_backend
from gnn.tensor import Tensor

__all__ = ["from_dlpack", "to_dlpack"]

# DLPack device types (dlpack.h): the ones gnn has arrays on.
_CPU, _CUDA, _CUDA_HOST = 1, 2, 3


def from_dlpack(obj: Any) -> Tensor:
    """A tensor sharing memory with `obj` (anything with __dlpack__, or a DLPack capsule's owner).

    CPU memory becomes a CPU tensor, CUDA memory a tensor on that GPU; nothing is copied.
    """
    if isinstance(obj, Tensor):
        return obj.detach()
    if not hasattr(obj, "__dlpack__") or not hasattr(obj, "__dlpack_device__"):
        raise TypeError(
            f"from_dlpack: {type(obj).__name__} does not support DLPack "
            "(it has no __dlpack__ and __dlpack_device__)"
        )
    kind, index = obj.__dlpack_device__()
    kind = int(kind)
    if kind in (_CPU, _CUDA_HOST):
        be = get_backend("cpu")
    elif kind == _CUDA:
        be = get_backend(f"cuda:{int(index)}")
    else:
        raise ValueError(
            f"from_dlpack: memory on DLPack device type {kind}; gnn has arrays on the CPU (1) "
            "and CUDA GPUs (2) only"
        )
    return Tensor.wrap(be.from_dlpack(obj), be)


def to_dlpack(tensor: Tensor) -> Any:
    """A DLPack capsule of `tensor`'s memory (the legacy interface; prefer passing the tensor
    itself to the consumer's from_dlpack)."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"to_dlpack: expected a Tensor, got {type(tensor).__name__}")
    return tensor.__dlpack__()
