"""CUDA graphs on CuPy: streams, a stream capture into memory of its own, and its replay.

CuPy's stream capture (`Stream.begin_capture` / `end_capture` -> `cupy.cuda.Graph.launch`)
records the work queued on a stream instead of running it. The graph keeps the device addresses
it was captured with, so every buffer the captured work touches must keep its address and must
not be handed to anyone else between replays. Buffers that exist before the capture (parameters,
optimizer state, the static inputs) are held by their owners; buffers allocated during the
capture come from a GraphPool, which holds on to every block it hands out for as long as it lives
(CuPy's default pool would give a block freed during the capture to other work afterwards, which
the next replay would then overwrite). The CuPy module comes in as `backend.xp`: this module
imports no CuPy itself.
"""

from __future__ import annotations

from typing import Any

CAPTURE_MODES = ("global", "thread_local", "relaxed")


class DeviceStream:
    """A CUDA stream of one GPU (a `with` makes it current: kernels queue on it)."""

    def __init__(self, backend: Any, raw: Any = None) -> None:
        self.backend = backend
        if raw is None:
            with backend._cuda_device:
                raw = backend.xp.cuda.Stream(non_blocking=True)
        self.raw = raw

    def wait_stream(self, other: DeviceStream) -> None:
        """Work queued here from now on waits for the work queued on `other` so far."""
        self.raw.wait_event(other.raw.record())

    def synchronize(self) -> None:
        self.raw.synchronize()

    def is_capturing(self) -> bool:
        return bool(self.raw.is_capturing())

    def __enter__(self) -> DeviceStream:
        self.backend._cuda_device.__enter__()
        self.raw.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.raw.__exit__(*exc)
        self.backend._cuda_device.__exit__(*exc)


def current_stream(backend: Any) -> DeviceStream:
    """The stream kernels queue on now (the legacy default stream outside any `with stream`)."""
    with backend._cuda_device:
        return DeviceStream(backend, backend.xp.cuda.get_current_stream())


class GraphPool:
    """Device memory for captured work: every block it hands out stays reserved while it lives."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.blocks: list[Any] = []
        self._pool = backend.xp.get_default_memory_pool()

    def malloc(self, size: int) -> Any:
        """A block from CuPy's pool, kept: a CuPy allocator (cupy.cuda.using_allocator)."""
        block = self._pool.malloc(size)
        self.blocks.append(block)
        return block


class StreamCapture:
    """Captures the work queued on the current stream into a graph; replays it."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.graph: Any = None
        self._stream: Any = None
        self._allocating: Any = None

    def begin(self, pool: GraphPool, mode: str = "relaxed") -> None:
        """Start capturing the current stream; new device memory comes from `pool` until end()."""
        if mode not in CAPTURE_MODES:
            raise ValueError(f"capture_error_mode must be one of {CAPTURE_MODES}, got {mode!r}")
        cuda = self.backend.xp.cuda
        with self.backend._cuda_device:
            stream = cuda.get_current_stream()
        if stream.ptr == 0:
            raise RuntimeError(
                "CUDA graphs must be captured on a stream other than the default (legacy) one: "
                "use `with gnn.cuda.graph(g):`, which picks a side stream, or "
                "`with gnn.cuda.stream(gnn.cuda.Stream()):` around capture_begin/capture_end"
            )
        modes = {
            "global": cuda.runtime.streamCaptureModeGlobal,
            "thread_local": cuda.runtime.streamCaptureModeThreadLocal,
            "relaxed": cuda.runtime.streamCaptureModeRelaxed,
        }
        allocating = cuda.using_allocator(pool.malloc)
        allocating.__enter__()
        try:
            stream.begin_capture(modes[mode])
        except BaseException:
            allocating.__exit__(None, None, None)
            raise
        self._stream, self._allocating = stream, allocating

    def end(self) -> None:
        """Stop capturing; the graph is then ready to replay."""
        if self._stream is None:
            raise RuntimeError("capture_end without capture_begin")
        stream, allocating = self._stream, self._allocating
        self._stream = self._allocating = None
        try:
            self.graph = stream.end_capture()
        finally:
            allocating.__exit__(None, None, None)

    def replay(self) -> None:
        """Launch the captured graph on the current stream: all its work, one launch."""
        if self.graph is None:
            raise RuntimeError("replay of a CUDA graph that was not captured (or was reset)")
        with self.backend._cuda_device:
            self.graph.launch(self.backend.xp.cuda.get_current_stream())
