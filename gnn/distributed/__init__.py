"""gnn.distributed: process groups and collectives over MPI (mpi4py) or NCCL (CuPy), PyTorch-shaped.

Launch with `mpiexec -n N python -m mpi4py script.py` (see docs/distributed.md); a script run
without a launcher is a group of one. mpi4py is imported by init_process_group, never by
`import gnn`: single-process use needs none of this.

Collectives work in place on Tensors: CPU tensors go through MPI; CUDA tensors go through NCCL in
a group made with backend="nccl", or through host copies over MPI in a backend="mpi" group.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from gnn.tensor import Tensor

__all__ = [
    "ReduceOp", "abort", "all_gather", "all_gather_array", "all_reduce", "all_reduce_array",
    "barrier", "broadcast", "broadcast_array", "destroy_process_group", "get_backend", "get_device",
    "get_local_rank", "get_rank", "get_world_size", "init_process_group", "is_available",
    "is_initialized", "launcher_world_size",
]  # fmt: skip

MPI_INSTALL_HINT = "install the MPI extra: pip install 'gnn[mpi]' (mpi4py and the mpich wheel)"
BACKENDS = ("mpi", "nccl")


class ReduceOp:
    """Reduction names for all_reduce, as in torch.distributed.ReduceOp (plain strings here)."""

    SUM = "sum"
    MEAN = "mean"
    MAX = "max"
    MIN = "min"


_OPS = ("sum", "mean", "max", "min")

# Environment variables launchers set in each process: (size, rank, rank on this machine).
_LAUNCHER_ENV = [
    ("PMI_SIZE", "PMI_RANK", "MPI_LOCALRANKID"),  # MPICH (hydra), Intel MPI
    ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK"),  # Open MPI
    ("MV2_COMM_WORLD_SIZE", "MV2_COMM_WORLD_RANK", "MV2_COMM_WORLD_LOCAL_RANK"),  # MVAPICH
]


def launcher_world_size() -> int:
    """The number of processes an MPI launcher started this one among (1 without a launcher).

    Read from the launcher's environment variables, so it costs no import of mpi4py.
    """
    for size, _, _ in _LAUNCHER_ENV:
        value = os.environ.get(size, "")
        if value.isdigit():
            return int(value)
    return 1


@dataclass
class _Group:
    backend: str
    rank: int
    size: int
    local_rank: int
    comm: Any = None  # a private duplicate of MPI.COMM_WORLD; None for a group of one without MPI
    mpi: Any = None  # the mpi4py.MPI module
    nccl: Any = None  # gnn.backend.nccl.Communicator for backend "nccl"
    saved_excepthook: Any = None


_group: _Group | None = None


def is_available() -> bool:
    """True when mpi4py can be imported (the MPI extra is installed)."""
    import importlib.util

    return importlib.util.find_spec("mpi4py") is not None


def is_initialized() -> bool:
    """True between init_process_group and destroy_process_group."""
    return _group is not None


def _require(who: str) -> _Group:
    if _group is None:
        raise RuntimeError(
            f"{who}: the default process group is not initialized; call "
            "gnn.distributed.init_process_group() first"
        )
    return _group


def get_rank() -> int:
    """This process's rank in the group (0 when no group is initialized)."""
    return 0 if _group is None else _group.rank


def get_world_size() -> int:
    """The number of processes in the group (1 when no group is initialized)."""
    return 1 if _group is None else _group.size


def get_local_rank() -> int:
    """This process's rank among the group's processes on the same machine (0 without a group)."""
    return 0 if _group is None else _group.local_rank


def get_device() -> str:
    """The device this rank trains on: "cuda:N" (its GPU) in a "nccl" group, else "cpu"."""
    group = _require("get_device")
    return f"cuda:{group.nccl.device_index}" if group.nccl is not None else "cpu"


def get_backend() -> str:
    """The group's backend: "mpi" or "nccl"."""
    return _require("get_backend").backend


def _import_mpi() -> Any:
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise RuntimeError(
            f"gnn.distributed: this process was started by an MPI launcher with "
            f"{launcher_world_size()} processes, but mpi4py cannot be imported ({exc}); "
            + MPI_INSTALL_HINT
        ) from exc
    return MPI


def _abort_on_uncaught(group: _Group) -> None:
    """Make an uncaught exception on one rank end every rank (MPI_Abort), not hang the others.

    `python -m mpi4py script.py` does this too; the hook covers plain `python script.py` and the
    `gnn` command under mpiexec.
    """
    previous = sys.excepthook

    def hook(kind: type, value: BaseException, tb: Any) -> None:
        previous(kind, value, tb)  # the traceback first, so the error message is not lost
        try:
            sys.stderr.write(f"gnn.distributed: rank {group.rank} failed; aborting all ranks\n")
            sys.stderr.flush()
            sys.stdout.flush()
            # a moment for the launcher to forward the message: Abort tears the job down at once
            time.sleep(0.2)
        finally:
            group.mpi.COMM_WORLD.Abort(1)

    group.saved_excepthook = previous
    sys.excepthook = hook


def init_process_group(backend: str = "mpi", device: int | None = None) -> None:
    """Join the default process group: every process the launcher started (1 without one).

    backend: "mpi" (CPU tensors; CUDA tensors through host copies) or "nccl" (CUDA tensors on
    NCCL, one process per GPU; CPU tensors still over MPI). device: for "nccl", the GPU index this
    rank uses (default: its local rank modulo the visible GPUs; with CUDA_VISIBLE_DEVICES set to
    one GPU per rank that is 0).
    """
    global _group
    if _group is not None:
        raise RuntimeError(
            "init_process_group: the default process group is already initialized "
            "(call destroy_process_group() first)"
        )
    if backend not in BACKENDS:
        raise ValueError(f"init_process_group: backend must be 'mpi' or 'nccl', got {backend!r}")
    if device is not None and (not isinstance(device, int) or device < 0):
        raise ValueError(f"init_process_group: device must be a GPU index >= 0, got {device!r}")
    launched = launcher_world_size()
    if launched == 1 and not is_available():
        # A script run on its own is a group of one; it needs no MPI at all.
        group = _Group(backend, 0, 1, 0)
    else:
        MPI = _import_mpi()
        comm = MPI.COMM_WORLD.Dup()  # private: a user's own MPI traffic cannot interleave
        local = comm.Split_type(MPI.COMM_TYPE_SHARED)
        group = _Group(backend, comm.Get_rank(), comm.Get_size(), local.Get_rank(), comm, MPI)
        local.Free()
    if backend == "nccl":
        try:
            group.nccl = _nccl_communicator(group, device)
        except BaseException:
            if group.comm is not None:
                group.comm.Free()
            raise
    if group.size > 1:
        _abort_on_uncaught(group)
    _group = group


def _nccl_communicator(group: _Group, device: int | None) -> Any:
    from gnn.backend import cuda_available
    from gnn.backend import nccl as nccl_backend
    from gnn.backend.cuda import device_count

    if not cuda_available():
        raise RuntimeError(
            "init_process_group(backend='nccl'): no CUDA GPU is visible to rank "
            f"{group.rank}; use backend='mpi' on CPUs"
        )
    count = device_count()
    index = group.local_rank % count if device is None else device
    if index >= count:
        raise ValueError(
            f"init_process_group: device {index} does not exist ({count} GPU(s) visible)"
        )
    # Rank 0 makes the id; MPI carries it to the others (the one pickled message in this module).
    uid = nccl_backend.new_unique_id() if group.rank == 0 else None
    if group.comm is not None:
        uid = group.comm.bcast(uid, root=0)
    return nccl_backend.Communicator(group.size, uid, group.rank, index)


def abort(exit_code: int = 1) -> None:
    """End every rank of the job now with exit_code (MPI_Abort); a plain exit in one rank would
    leave the others waiting in their next collective. In one process: sys.exit(exit_code)."""
    group = _group
    sys.stdout.flush()
    sys.stderr.flush()
    time.sleep(0.2)  # as in the excepthook: let the launcher forward what was printed
    if group is not None and group.mpi is not None and group.size > 1:
        group.mpi.COMM_WORLD.Abort(exit_code)
    sys.exit(exit_code)


def destroy_process_group() -> None:
    """Leave the default process group (collective: every rank calls it)."""
    global _group
    group = _require("destroy_process_group")
    _group = None
    if group.nccl is not None:
        group.nccl.destroy()
    if group.comm is not None:
        group.comm.Free()
    if group.saved_excepthook is not None:
        sys.excepthook = group.saved_excepthook


# ---- collectives on arrays (NumPy or CuPy) -------------------------------------------------------


def _check_op(op: Any, who: str) -> str:
    if op not in _OPS:
        raise ValueError(f"{who}: op must be one of 'sum', 'mean', 'max', 'min', got {op!r}")
    return op


def _mpi_ready(a: np.ndarray) -> np.ndarray:
    """A C-contiguous array MPI can take: float16 widened to float32 (MPI has no half type)."""
    if a.dtype == np.float16:
        return a.astype(np.float32)
    return np.ascontiguousarray(a)


def _check_dtype(a: Any, who: str) -> None:
    if a.dtype == np.bool_ or a.dtype.kind not in "fiu":
        raise TypeError(f"{who}: needs a float or integer tensor, got dtype {a.dtype}")


def _host_round_trip(a: Any, fn: Any) -> None:
    """Run fn on a host array holding a (copying back when a is on a GPU or not contiguous)."""
    if isinstance(a, np.ndarray):
        buf = _mpi_ready(a)
        fn(buf)
        if buf is not a:
            a[...] = buf
        return
    host = _mpi_ready(np.asarray(a.get()))  # a CuPy array in a group without NCCL
    fn(host)
    a[...] = _to_device_like(a, host)


def _to_device_like(a: Any, host: np.ndarray) -> Any:
    """host copied to the GPU that holds the CuPy array a, with a's dtype."""
    from gnn.backend import get_backend

    return get_backend(f"cuda:{a.device.id}").asarray(host, a.dtype)


def _use_nccl(group: _Group, a: Any) -> bool:
    return group.nccl is not None and not isinstance(a, np.ndarray)


def all_reduce_array(a: Any, op: str = "sum") -> Any:
    """a = op over all ranks of a, in place, on a NumPy or CuPy array; returns a."""
    group = _require("all_reduce")
    _check_op(op, "all_reduce")
    _check_dtype(a, "all_reduce")
    if op == "mean" and a.dtype.kind != "f":
        raise TypeError(f"all_reduce: op='mean' needs a float tensor, got dtype {a.dtype}")
    if group.size == 1:
        return a
    base = "sum" if op == "mean" else op
    if _use_nccl(group, a):
        if a.flags.c_contiguous:
            group.nccl.all_reduce(a, base)
        else:
            buf = a.copy()
            group.nccl.all_reduce(buf, base)
            a[...] = buf
    else:
        mpi_op = {"sum": group.mpi.SUM, "max": group.mpi.MAX, "min": group.mpi.MIN}[base]
        _host_round_trip(a, lambda buf: group.comm.Allreduce(group.mpi.IN_PLACE, buf, op=mpi_op))
    if op == "mean":
        a /= group.size
    return a


def broadcast_array(a: Any, src: int = 0) -> Any:
    """a = rank src's a, in place, on a NumPy or CuPy array; returns a."""
    group = _require("broadcast")
    if not isinstance(src, int) or not 0 <= src < group.size:
        raise ValueError(f"broadcast: src must be a rank in [0, {group.size}), got {src!r}")
    if group.size == 1:
        return a
    if a.dtype == np.bool_:
        view = a.view(np.uint8)  # MPI and NCCL move bytes; bool has the layout of uint8
        broadcast_array(view, src)
        return a
    _check_dtype(a, "broadcast")
    if _use_nccl(group, a):
        if a.flags.c_contiguous:
            group.nccl.broadcast(a, src)
        else:
            buf = a.copy()
            group.nccl.broadcast(buf, src)
            a[...] = buf
    else:
        _host_round_trip(a, lambda buf: group.comm.Bcast(buf, root=src))
    return a


def all_gather_array(a: Any) -> Any:
    """A new array of shape (world_size, *a.shape): every rank's a, in rank order."""
    group = _require("all_gather")
    _check_dtype(a, "all_gather")
    if group.size == 1:
        return a[None].copy()
    # Every rank must send the same shape: check it first, or MPI would read past buffers.
    shapes = group.comm.allgather(tuple(a.shape)) if group.comm is not None else [a.shape]
    if any(s != tuple(a.shape) for s in shapes):
        raise ValueError(f"all_gather: every rank must pass the same shape, got {shapes}")
    if _use_nccl(group, a):
        src = a if a.flags.c_contiguous else a.copy()
        from gnn.backend import get_backend

        xp = get_backend(f"cuda:{a.device.id}").xp
        out = xp.empty((group.size, *a.shape), dtype=a.dtype)
        group.nccl.all_gather(src, out)
        return out
    host = a if isinstance(a, np.ndarray) else np.asarray(a.get())
    send = _mpi_ready(host)
    out = np.empty((group.size, *a.shape), dtype=send.dtype)
    group.comm.Allgather(send, out)
    out = out.astype(a.dtype, copy=False)
    return out if isinstance(a, np.ndarray) else _to_device_like(a, out)


# ---- collectives on Tensors (the PyTorch names) --------------------------------------------------


def _tensor(t: Any, who: str) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"{who}: expected a gnn.Tensor, got {type(t).__name__}")
    return t


def all_reduce(tensor: Tensor, op: str = ReduceOp.SUM) -> Tensor:
    """tensor = op ("sum", "mean", "max", "min") over all ranks, in place; returns tensor."""
    all_reduce_array(_tensor(tensor, "all_reduce").array, op)
    return tensor


def broadcast(tensor: Tensor, src: int = 0) -> Tensor:
    """tensor = rank src's tensor, in place, on every rank; returns tensor."""
    broadcast_array(_tensor(tensor, "broadcast").array, src)
    return tensor


def all_gather(tensor_list: list[Tensor], tensor: Tensor) -> list[Tensor]:
    """tensor_list[i] = rank i's tensor, written in place (a list of world_size Tensors shaped
    like tensor); returns tensor_list."""
    _tensor(tensor, "all_gather")
    size = get_world_size()
    if not isinstance(tensor_list, list) or len(tensor_list) != size:
        raise ValueError(
            f"all_gather: tensor_list must be a list of world_size={size} Tensors, got "
            f"{len(tensor_list) if isinstance(tensor_list, list) else type(tensor_list).__name__}"
        )
    for i, t in enumerate(tensor_list):
        _tensor(t, "all_gather")
        if t.shape != tensor.shape or t.dtype != tensor.dtype:
            raise ValueError(
                f"all_gather: tensor_list[{i}] is {t.dtype} {t.shape}, the tensor "
                f"{tensor.dtype} {tensor.shape}"
            )
    gathered = all_gather_array(tensor.array)
    for i, t in enumerate(tensor_list):
        same = type(gathered) is type(t.array)
        t.array[...] = gathered[i] if same else t.backend.asarray(gathered[i])
    return tensor_list


def barrier() -> None:
    """Wait until every rank has called barrier()."""
    group = _require("barrier")
    if group.nccl is not None:
        group.nccl.synchronize()  # queued GPU collectives finish before the ranks move on
    if group.comm is not None:
        group.comm.Barrier()
