"""Streams, stream capture and CUDA graphs for the fake CuPy, as CUDA defines them.

What CUDA does, and so what this does:
- While a stream captures (`Stream.begin_capture`), work queued on it is recorded into a graph,
  not executed: its results appear only when the graph is launched. Here every operation on the
  capturing stream runs at once (NumPy needs the results' shapes) and is recorded as a closure
  over the same device buffers; `end_capture` then undoes it: every array that existed before the
  capture gets its contents back, and every array allocated during the capture is refilled with
  garbage (NaN, or -7), so a step that reads a captured result before a replay reads garbage, as
  on a GPU. Nothing can look in between: a host read during capture raises.
- `Graph.launch` re-runs the recorded closures in order, on the same buffers. It counts as one
  launch in `cupy.counting()`, moving the bytes of the launches captured in it (`Graph.kernels`
  and `Graph.nbytes`: fake only); the operations inside it are not counted again.
- During capture, what would make the host wait for the GPU raises CUDARuntimeError
  cudaErrorStreamCaptureUnsupported (a device-to-host copy, `.get()`, `synchronize()`, reading a
  0-d array as a number) and invalidates the capture: `end_capture` then raises
  cudaErrorStreamCaptureInvalidated. Work queued on the legacy default stream while a blocking
  stream captures raises cudaErrorStreamCaptureImplicit (an implicit dependency on it); work on
  any other stream during a capture is refused too, as the fake could not undo the capture
  without undoing that work (CUDA would run it).
- Stricter than CUDA, for the mistakes of the same kind: a host-to-device copy during capture
  raises (CUDA would capture a copy from that host address, read again at every replay), and so
  does a new device array that does not come from an allocator set by `cupy.cuda.using_allocator`
  (CuPy's default pool would hand the block to other work after the capture, which replays then
  overwrite); in the global and thread-local capture modes any allocation raises, as cudaMalloc
  does there (the fake keeps no cache of free blocks).
- Random draws during capture draw at each replay, not at capture (CuPy's Generator keeps its
  state in device memory, which only the replayed kernels advance): `end_capture` puts the fake's
  host-side generators back where they were.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import numpy as np

# cudaStreamCaptureMode
streamCaptureModeGlobal = 0
streamCaptureModeThreadLocal = 1
streamCaptureModeRelaxed = 2


class CUDARuntimeError(RuntimeError):
    """cupy_backends.cuda.api.runtime.CUDARuntimeError: a CUDA runtime call failed."""

    def __init__(self, status: str, message: str) -> None:
        self.status = status
        super().__init__(f"{status}: {message}")


class Stream:
    """cupy.cuda.Stream: work on it runs at once (NumPy), except while it captures."""

    null: Stream
    _next_ptr = 16

    def __init__(self, null: bool = False, non_blocking: bool = False, ptds: bool = False,
                 priority: Any = None) -> None:  # fmt: skip
        if null:
            self.ptr = 0
        else:
            self.ptr = Stream._next_ptr
            Stream._next_ptr += 16
        self.non_blocking = non_blocking
        self.device_id = 0

    def __repr__(self) -> str:
        return f"<Stream {self.ptr} (device 0)>"

    def __enter__(self) -> Stream:
        _current.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        _current.pop()

    def use(self) -> Stream:
        """Make this the current stream (outside any `with`)."""
        if _current:
            _current[-1] = self
        else:
            _current.append(self)
        return self

    @property
    def done(self) -> bool:
        return True

    def synchronize(self) -> None:
        check_sync("cudaStreamSynchronize", self)

    def record(self, event: Any = None) -> Any:
        from cupy import cuda

        event = event if event is not None else cuda.Event()
        event.record(self)
        return event

    def wait_event(self, event: Any) -> None:
        return None  # work here is done when its call returns: nothing to wait for

    def begin_capture(self, mode: int | None = None) -> None:
        global _capture
        if self.ptr == 0:
            raise RuntimeError("cannot capture on the default (legacy) stream")
        if _capture is not None:
            raise CUDARuntimeError(
                "cudaErrorIllegalState", "a stream is already capturing (one capture at a time)"
            )
        _capture = _Capture(self, streamCaptureModeRelaxed if mode is None else mode)

    def end_capture(self) -> Graph:
        global _capture
        capture = _capture
        if capture is None or capture.stream is not self:
            raise CUDARuntimeError("cudaErrorIllegalState", "this stream is not capturing")
        _capture = None
        capture.undo()
        cupy_module()._active.remove(capture.counts)
        if capture.invalid:
            raise CUDARuntimeError(
                "cudaErrorStreamCaptureInvalidated",
                f"operation failed due to a previous error during capture ({capture.invalid})",
            )
        return Graph(capture.ops, capture.fresh, capture.counts)

    def is_capturing(self) -> bool:
        return _capture is not None and _capture.stream is self


Stream.null = Stream(null=True)
_current: list[Stream] = []


def get_current_stream() -> Stream:
    """cupy.cuda.get_current_stream: the innermost `with stream:` (the legacy stream outside)."""
    return _current[-1] if _current else Stream.null


class Graph:
    """cupy.cuda.Graph: the recorded work of one capture, launched as one unit."""

    def __init__(self, ops: list[Callable[[], Any]], memory: dict, counts: Any) -> None:
        self._ops = ops
        self._memory = memory  # the graph's own allocations stay alive with it
        self.kernels = counts.launches  # fake only: the launches inside, and the bytes they move
        self.nbytes = counts.bytes

    def upload(self, stream: Any = None) -> None:
        return None

    def launch(self, stream: Any = None) -> None:
        import cupy

        stream = stream if stream is not None else get_current_stream()
        if _capture is not None and stream is _capture.stream:  # a child graph: recorded
            run(self._replay, None)
            return
        if _capture is not None:
            raise _elsewhere(_capture, stream, "cudaGraphLaunch")
        if cupy._active:  # one launch, moving the bytes of the kernels inside
            cupy._record("launch", "graph launch", self.nbytes)
        self._replay()

    def _replay(self) -> None:
        with np.errstate(all="ignore"):
            for op in self._ops:
                op()


class _Capture:
    """One capture in progress: the recorded work, and what undoes running it meanwhile."""

    def __init__(self, stream: Stream, mode: int) -> None:
        import cupy

        self.stream, self.mode = stream, mode
        self.ops: list[Callable[[], Any]] = []
        self.counts = cupy.Counts()  # what the graph holds: its launches and their bytes
        cupy._active.append(self.counts)
        self.invalid = ""
        # Every device array alive now (through the fake's array objects): copies to restore.
        roots: dict[int, np.ndarray] = {}
        self.generators: list[tuple[Any, Any]] = []  # and the random generators' states
        for obj in gc.get_objects():
            if type(obj) is cupy.ndarray:
                root = _root(obj._a)
                roots[id(root)] = root
            elif type(obj) is cupy.random.Generator:
                self.generators.append((obj, obj._g.bit_generator.state))
        self.saved = [(r, r.copy()) for r in roots.values() if r.flags.writeable]
        self.before = roots  # held, so that no id is reused during the capture
        self.fresh: dict[int, np.ndarray] = {}

    def undo(self) -> None:
        for root, copy in self.saved:
            root[...] = copy
        for generator, state in self.generators:
            generator._g.bit_generator.state = state
        for root in self.fresh.values():
            if root.flags.writeable:
                root.fill(garbage(root.dtype))

    def fail(self, status: str, message: str) -> CUDARuntimeError:
        self.invalid = self.invalid or status
        return CUDARuntimeError(status, message)


_capture: _Capture | None = None
allocator: Callable[[int], Any] | None = None  # set by cupy.cuda.using_allocator / set_allocator


def garbage(dtype: np.dtype) -> Any:
    """What fills memory that nothing has written yet: NaN, -7 (unsigned: its max - 6), True."""
    if dtype.kind in "fc":
        return np.nan
    if dtype.kind == "u":
        return np.iinfo(dtype).max - 6
    return -7 if dtype.kind == "i" else True


def cupy_module() -> Any:
    import cupy

    return cupy


def _root(a: np.ndarray) -> np.ndarray:
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _elsewhere(capture: _Capture, stream: Stream, what: str) -> CUDARuntimeError:
    """The error for work on another stream than the capturing one, during the capture."""
    if stream.ptr == 0 and not capture.stream.non_blocking:
        return capture.fail(
            "cudaErrorStreamCaptureImplicit",
            f"{what} on the legacy stream, which waits for the capturing stream "
            f"{capture.stream.ptr}",
        )
    return CUDARuntimeError(
        "cudaErrorNotSupported",
        f"fake CuPy: {what} on stream {stream.ptr} while stream {capture.stream.ptr} captures "
        "(CUDA would run it at once; the fake, which runs captured work too and undoes it at "
        "end_capture, cannot keep the two apart): queue it before or after the capture",
    )


def _refill(dst: Any, src: Any) -> None:
    """Copy a recomputed result into the captured result's memory."""
    if isinstance(dst, (tuple, list)):
        for d, s in zip(dst, src):
            _refill(d, s)
    elif hasattr(dst, "_a") and dst._a.flags.writeable:
        np.copyto(dst._a, src, casting="unsafe")


def run(compute: Callable[[], Any], wrap: Callable[[Any], Any] | None) -> Any:
    """compute() on the current stream, its result wrapped (None: it writes in place); while
    that stream captures, also recorded, to run again into the same memory at each replay."""
    capture = _capture
    if capture is None:
        result = compute()
        return result if wrap is None else wrap(result)
    stream = get_current_stream()
    if stream is not capture.stream:
        raise _elsewhere(capture, stream, "a kernel launch")
    if capture.invalid:
        raise CUDARuntimeError(
            "cudaErrorStreamCaptureInvalidated", f"the capture failed earlier ({capture.invalid})"
        )
    result = compute()
    if wrap is None:
        capture.ops.append(compute)
        return None
    wrapped = wrap(result)
    capture.ops.append(lambda: _refill(wrapped, compute()))
    return wrapped


def check_sync(what: str, stream: Stream | None = None, whole_device: bool = False) -> None:
    """Raise as CUDA does when the host would wait for a capturing stream."""
    capture = _capture
    if capture is None:
        return
    stream = stream if stream is not None else get_current_stream()
    if whole_device or stream is capture.stream:
        raise capture.fail(
            "cudaErrorStreamCaptureUnsupported",
            f"operation not permitted when stream is capturing ({what})",
        )
    raise _elsewhere(capture, stream, what)


def check_h2d(what: str) -> None:
    """Refuse a host-to-device copy on a capturing stream (see the module docstring)."""
    capture = _capture
    if capture is not None and get_current_stream() is not capture.stream:
        raise _elsewhere(capture, get_current_stream(), what)
    if capture is not None:
        raise capture.fail(
            "cudaErrorStreamCaptureUnsupported",
            f"{what} during stream capture (fake CuPy: a replay would read that host memory "
            "again, whatever it holds by then)",
        )


def note_array(a: np.ndarray) -> None:
    """Called for every new device array object while a stream captures: new memory must come
    from the capture's allocator."""
    capture = _capture
    if capture is None or get_current_stream() is not capture.stream:
        return
    root = _root(a)
    key = id(root)
    if key in capture.before or key in capture.fresh:
        return
    if capture.mode != streamCaptureModeRelaxed:
        raise capture.fail(
            "cudaErrorStreamCaptureUnsupported",
            f"operation not permitted when stream is capturing (cudaMalloc of {root.nbytes} "
            "bytes in the global or thread-local capture mode)",
        )
    if allocator is None:
        raise capture.fail(
            "cudaErrorStreamCaptureUnsupported",
            f"fake CuPy: {root.nbytes} bytes allocated during stream capture from the default "
            "memory pool, which hands them to other work after the capture; allocate from the "
            "graph's own pool (cupy.cuda.using_allocator)",
        )
    allocator(max(root.nbytes, 1))
    capture.fresh[key] = root


def basic_view(a: np.ndarray, index: Any) -> np.ndarray:
    """a[index] for a basic index as CuPy gives it: a view, 0-d where NumPy gives a scalar copy
    (a captured step reads such an element at replay, not the value it had at capture)."""
    view = a[index]
    if isinstance(view, np.ndarray):
        return view
    return a[(index if isinstance(index, tuple) else (index,)) + (Ellipsis,)]
