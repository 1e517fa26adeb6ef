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

Device-side error checks (CupyBackend.check_ids, the kernels' error flags) are bookkept on the
host when a kernel is queued; a replay queues nothing from Python, so StreamCapture redoes that
bookkeeping at each replay: the ids a captured step checks are folded, inside the graph, into a
maximum of its own, which each replay hands to the backend's pending checks; once a check has
read it, the next replay restarts it from the eager steps' checks since then (or from none).
"""

from __future__ import annotations

import contextlib
from typing import Any

# cudaStreamCaptureMode: CUDA's values (part of its ABI), by the names torch.cuda.graph takes
CAPTURE_MODES = {"global": 0, "thread_local": 1, "relaxed": 2}


class DeviceStream:
    """A CUDA stream of one GPU (a `with` makes it current: kernels queue on it)."""

    def __init__(self, backend: Any, current: bool = False) -> None:
        """A new stream of the backend's GPU, or (current=True) the one kernels queue on now."""
        self.backend = backend
        with backend._cuda_device:
            cuda = backend.xp.cuda
            self.raw = cuda.get_current_stream() if current else cuda.Stream(non_blocking=True)

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
    return DeviceStream(backend, current=True)


class GraphPool(list):
    """Device memory for captured work: the blocks it hands out, reserved while it lives."""

    def __init__(self, backend: Any) -> None:
        super().__init__()
        self._pool = backend.xp.get_default_memory_pool()

    def malloc(self, size: int) -> Any:
        """A block from CuPy's pool, kept: a CuPy allocator (cupy.cuda.using_allocator)."""
        self.append(self._pool.malloc(size))
        return self[-1]


class StreamCapture:
    """Captures the work queued on the current stream into a graph; replays it."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.graph: Any = None
        # from begin() to end(): the stream, the pool's allocator held current, and the backend's
        # pending checks kept aside
        self._open: tuple[Any, contextlib.ExitStack, tuple[dict, bool]] | None = None
        self._id_maxima: dict[tuple, Any] = {}  # check_ids key -> the graph's running maximum
        self._flags = False  # whether the captured kernels can flag errors

    def begin(self, pool: GraphPool, mode: str = "relaxed") -> None:
        """Start capturing the current stream; new device memory comes from `pool` until end()."""
        if mode not in CAPTURE_MODES:
            raise ValueError(f"capture_error_mode: one of {list(CAPTURE_MODES)}, not {mode!r}")
        stream = current_stream(self.backend).raw
        if stream.ptr == 0:
            raise RuntimeError(
                "CUDA graphs must be captured on a stream other than the default (legacy) one: "
                "use `with gnn.cuda.graph(g):`, which picks a side stream, or "
                "`with gnn.cuda.stream(gnn.cuda.Stream()):` around capture_begin/capture_end"
            )
        with contextlib.ExitStack() as allocating:  # undone at once if the capture cannot start
            allocating.enter_context(self.backend.xp.cuda.using_allocator(pool.malloc))
            stream.begin_capture(CAPTURE_MODES[mode])
            held = allocating.pop_all()
        be = self.backend  # the capture's own checks start from none
        self._open = (stream, held, (be._id_checks, be._errors_pending))
        be._id_checks, be._errors_pending = {}, False

    def end(self) -> None:
        """Stop capturing; the graph is then ready to replay."""
        if self._open is None:
            raise RuntimeError("capture_end without capture_begin")
        (stream, allocating, outer), self._open = self._open, None
        be, xp = self.backend, self.backend.xp
        captured, self._flags = be._id_checks, be._errors_pending
        be._id_checks, be._errors_pending = outer
        with allocating:  # the pool allocates until the capture has ended, come what may
            try:
                # still capturing: each checked id maximum folds into one that outlives a replay
                maxima = {key: xp.empty_like(top) for key, top in captured.items()}
                for key, top in captured.items():
                    xp.maximum(maxima[key], top, out=maxima[key])
            finally:
                self.graph = stream.end_capture()
        self._id_maxima = maxima  # set at each replay before it is read (see replay)

    def replay(self) -> None:
        """Launch the captured graph on the current stream: all its work, one launch."""
        if self.graph is None:
            raise RuntimeError("replay of a CUDA graph that was not captured (or was reset)")
        be = self.backend
        for key, top in self._id_maxima.items():
            seen = be._id_checks.get(key)
            if seen is not top:  # a check read it since the last replay (or none came yet):
                # restart from what eager steps checked since then, or from "no id seen"
                top[...] = 0 if seen is None else seen
                be._id_checks[key] = top
        with be._cuda_device:
            self.graph.launch(be.xp.cuda.get_current_stream())
        if self._flags or self._id_maxima:
            be._errors_pending = True
