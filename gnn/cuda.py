"""gnn.cuda: PyTorch's torch.cuda helpers that training scripts call (availability, seeds, sync),
streams, and CUDA graphs (capture a training step once, replay it as one launch).

Every GPU fact comes from gnn.backend (the only layer that knows CuPy); with no GPU these answer
as PyTorch does on a CPU-only machine: not available, no devices, seeds ignored. Streams and CUDA
graphs need a GPU and say so. docs/cuda-graphs.md has the rules of capture.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from gnn.backend import Device, cuda_available, get_backend, parse_device

__all__ = [
    "CUDAGraph", "Stream", "current_device", "current_stream", "device_count", "graph",
    "graph_pool_handle", "is_available", "is_bf16_supported", "is_current_stream_capturing",
    "manual_seed", "manual_seed_all", "set_device", "stream", "synchronize",
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


# ---- streams and CUDA graphs ------------------------------------------------------------------


def _gpu_backend(what: str) -> Any:
    """The current GPU's backend; a clear error where there is none."""
    if not is_available():
        raise RuntimeError(
            f"gnn.cuda.{what} needs a CUDA GPU and none is available (CuPy is missing or sees no "
            "device): CUDA streams and graphs queue and replay GPU work; on the CPU, call the "
            "training step itself"
        )
    return get_backend(f"cuda:{_current}")


class Stream:
    """A CUDA stream on the current GPU (torch.cuda.Stream): `with gnn.cuda.stream(s):` or
    `with s:` queues the kernels launched inside on it. `priority` is accepted and ignored."""

    def __init__(self, device: Any = None, priority: int = 0) -> None:
        from gnn.backend.cuda_graph import DeviceStream

        backend = _gpu_backend("Stream") if device is None else get_backend(_cuda_name(device))
        self._stream = DeviceStream(backend)

    @classmethod
    def _of(cls, device_stream: Any) -> Stream:
        s = cls.__new__(cls)
        s._stream = device_stream
        return s

    def wait_stream(self, other: Stream) -> None:
        """Work queued on this stream from now on waits for the work queued on `other` so far."""
        self._stream.wait_stream(other._stream)

    def synchronize(self) -> None:
        """Wait until the work queued on this stream has finished."""
        self._stream.synchronize()

    def __enter__(self) -> Stream:
        self._stream.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stream.__exit__(*exc)


def _cuda_name(device: Any) -> str:
    return f"cuda:{_indices(device)[0]}"


@contextmanager
def stream(s: Stream | None) -> Iterator[None]:
    """Queue the kernels launched inside the block on stream `s` (None: the current one)."""
    if s is None:
        yield
        return
    with s:
        yield


def current_stream(device: Any = None) -> Stream:
    """The stream kernels of the GPU queue on now."""
    from gnn.backend.cuda_graph import current_stream as backend_stream

    backend = _gpu_backend("current_stream") if device is None else get_backend(_cuda_name(device))
    return Stream._of(backend_stream(backend))


def is_current_stream_capturing() -> bool:
    """True while the current stream is being captured into a CUDA graph (False without a GPU)."""
    if not is_available():
        return False
    return current_stream()._stream.is_capturing()


class _GraphPoolHandle:
    """An opaque token for a CUDA graph memory pool (torch.cuda.graph_pool_handle())."""

    def __init__(self, pool: Any = None) -> None:
        self._pool = pool


def graph_pool_handle() -> _GraphPoolHandle:
    """A token for a memory pool that several graphs may capture into (`pool=` of capture_begin).

    The pool keeps every block a capture into it allocates for as long as any graph holding the
    token lives: those buffers are the graphs' inputs, outputs and scratch between replays.
    """
    return _GraphPoolHandle()


class CUDAGraph:
    """The GPU work of a block of code, captured once and replayed as one launch
    (torch.cuda.CUDAGraph). See docs/cuda-graphs.md for what capture allows."""

    def __init__(self) -> None:
        from gnn.backend.cuda_graph import StreamCapture

        self._backend = _gpu_backend("CUDAGraph")
        self._capture = StreamCapture(self._backend)
        self._pool: _GraphPoolHandle | None = None

    def capture_begin(
        self, pool: _GraphPoolHandle | None = None, capture_error_mode: str = "relaxed"
    ) -> None:
        """Start capturing the current stream (not the default one; `graph()` picks a side stream).

        capture_error_mode: "relaxed" (the default here, as in CuPy: the memory pool may have to
        grow during capture, which the stricter "global" and "thread_local" modes forbid).
        """
        from gnn.backend.cuda_graph import GraphPool

        handle = pool if pool is not None else _GraphPoolHandle()
        if handle._pool is None:
            handle._pool = GraphPool(self._backend)
        self._capture.begin(handle._pool, capture_error_mode)
        self._pool = handle

    def capture_end(self) -> None:
        """Stop capturing: the graph is ready to replay."""
        self._capture.end()

    def replay(self) -> None:
        """Run the captured work again, on the same buffers, as one launch on the current stream."""
        self._capture.replay()

    def reset(self) -> None:
        """Forget the captured work and release this graph's hold on its memory pool."""
        self._capture.graph = None
        self._pool = None

    def pool(self) -> _GraphPoolHandle:
        """The token of this graph's memory pool, for another capture to share it."""
        if self._pool is None:
            raise RuntimeError("CUDAGraph.pool(): the graph has not been captured yet")
        return self._pool


@contextmanager
def graph(
    cuda_graph: CUDAGraph,
    pool: _GraphPoolHandle | None = None,
    stream: Stream | None = None,
    capture_error_mode: str = "relaxed",
) -> Iterator[CUDAGraph]:
    """Capture the GPU work of the block into `cuda_graph` (torch.cuda.graph).

    The block runs on `stream` (default: a new side stream, made to wait for the current one),
    and its kernels do not run: they run at `cuda_graph.replay()`. Warm the code up eagerly first
    (its lazily made buffers and caches must exist before capture); read no result inside.
    """
    before = current_stream()
    side = stream if stream is not None else Stream()
    side.wait_stream(before)
    with side:
        cuda_graph.capture_begin(pool, capture_error_mode)
        try:
            yield cuda_graph
        except BaseException:
            with suppress(Exception):  # the block's error is the one to see, not "invalidated"
                cuda_graph.capture_end()
            cuda_graph.reset()
            raise
        cuda_graph.capture_end()
    before.wait_stream(side)
