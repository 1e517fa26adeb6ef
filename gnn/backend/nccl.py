"""NCCL collectives on CuPy arrays, for gnn.distributed's "nccl" backend (one process per GPU).

This module and gnn/backend/cuda.py are the only places that import CuPy; gnn.distributed calls
`new_unique_id` on rank 0, sends the id to every rank over MPI, then calls `Communicator`.

Untested here: the machine that wrote it has no GPU. It follows CuPy's `cupy.cuda.nccl` API
(NcclCommunicator(ndev, commId, rank); allReduce/bcast/allGather on device pointers, counts in
elements, on the current stream).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _nccl() -> Any:
    """CuPy's NCCL module; one clear error, whichever way it is missing."""
    try:
        from cupy.cuda import nccl

        if not getattr(nccl, "available", True):  # a CuPy that has the module but no library
            raise ImportError("CuPy reports NCCL as unavailable")
    except Exception as exc:  # ImportError, or a CuPy built without NCCL
        raise RuntimeError(
            f"the 'nccl' backend needs CuPy with NCCL ({exc}); install the CUDA extra "
            "(pip install 'gnn[cuda12]') and NCCL (pip install nvidia-nccl-cu12), or use "
            "backend='mpi'"
        ) from exc
    return nccl


def new_unique_id() -> Any:
    """A fresh NCCL unique id (rank 0 makes it, every rank needs it): a tuple or bytes."""
    return _nccl().get_unique_id()


class Communicator:
    """One rank's NCCL communicator on GPU `device_index`; collectives in place on CuPy arrays."""

    def __init__(self, world_size: int, unique_id: Any, rank: int, device_index: int) -> None:
        from gnn.backend import get_backend

        self._nccl = _nccl()
        self.xp = get_backend(f"cuda:{device_index}").xp
        self.device_index = device_index
        # This rank's GPU becomes the current device (as torch.cuda.set_device): arrays made
        # without a device context land there, and NCCL binds the communicator to it.
        self.xp.cuda.Device(device_index).use()
        # ncclCommInitRank returns once every rank has called it.
        self.comm = self._nccl.NcclCommunicator(world_size, unique_id, rank)

    def _buffer(self, a: Any) -> tuple[int, int, int]:
        """(device pointer, element count, NCCL dtype) of `a`, once NCCL can take it."""
        if not isinstance(a, self.xp.ndarray) or not a.flags.c_contiguous:
            raise TypeError("nccl: expected a C-contiguous CuPy array")
        if a.device.id != self.device_index:
            raise ValueError(
                f"nccl: the array is on cuda:{a.device.id}, this rank's communicator on "
                f"cuda:{self.device_index} (one rank per GPU; see docs/distributed.md)"
            )
        # NCCL names its types as NumPy does, upper-cased: float16 -> NCCL_FLOAT16 (none for bool)
        code = getattr(self._nccl, f"NCCL_{np.dtype(a.dtype).name.upper()}", None)
        if code is None:
            raise TypeError(f"nccl: no NCCL type for dtype {a.dtype}")
        return a.data.ptr, a.size, code

    def all_reduce(self, a: Any, op: str) -> None:
        """a = op over ranks of a, in place ("sum", "max" or "min": NCCL_SUM, ...)."""
        ptr, size, dtype = self._buffer(a)
        code = getattr(self._nccl, f"NCCL_{op.upper()}")
        self._on_device(self.comm.allReduce, ptr, ptr, size, dtype, code)

    def broadcast(self, a: Any, root: int) -> None:
        """a = root's a, in place."""
        self._on_device(self.comm.bcast, *self._buffer(a), root)

    def all_gather(self, send: Any, recv: Any) -> None:
        """recv (world_size * send.size elements) = every rank's send, in rank order."""
        send_ptr, size, dtype = self._buffer(send)
        self._on_device(self.comm.allGather, send_ptr, self._buffer(recv)[0], size, dtype)

    def _on_device(self, collective: Any, *args: Any) -> None:
        """Queue `collective(*args, stream)` on this rank's GPU and its current stream."""
        with self.xp.cuda.Device(self.device_index):
            collective(*args, self.xp.cuda.get_current_stream().ptr)

    def synchronize(self) -> None:
        """Wait for the collectives queued on the current stream."""
        self.xp.cuda.get_current_stream().synchronize()

    def destroy(self) -> None:
        """Free the communicator (every rank calls it)."""
        comm, self.comm = self.comm, None
        if comm is not None:
            comm.destroy()
