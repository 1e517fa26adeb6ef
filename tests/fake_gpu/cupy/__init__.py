"""A stand-in for CuPy, on NumPy, whose arrays behave like memory on another device.

With GNN_FAKE_CUDA=1 (or =emulate), tests/conftest.py puts tests/fake_gpu first on sys.path, so
gnn's own CupyBackend runs the gpu-marked tests on a machine without a GPU. That checks the Python
side of gnn's GPU support (moving models and optimizers, files written on one backend and read on
the other, no silent trips through host memory, kernel launch arguments) and nothing about CUDA:
the arithmetic is NumPy's, and gnn's kernels run as NumPy stand-ins. With GNN_FAKE_CUDA=emulate they
run instead as the real CUDA code, compiled with g++ by the CPU emulator in tests/cuda_cpu.

Where CuPy is stricter than NumPy, so is this, because those are the mistakes it is here to find:
- an array refuses implicit conversion to NumPy (`np.asarray(x)`) with CuPy's TypeError;
- a NumPy array is refused as an operand of a ufunc, function or method; only `asarray` and
  `array` take one (and copy it, as a transfer would), and `asnumpy` / `.get()` copy back;
- reductions and integer indexing give 0-d arrays, not NumPy scalars;
- integer array indices out of bounds wrap around (getitem, scatter_add), as in CuPy, where NumPy
  raises IndexError;
- `empty` and `empty_like` fill new arrays with NaN (or -7), where NumPy often hands out zeros;
- only names CuPy 14.2 has exist (`_names.py`); a ufunc takes only out, dtype and casting; the
  random Generator has only CuPy's methods (no permutation, no bit_generator state);
- `RawModule` kernels check every launch against the kernel's C signature before a NumPy stand-in
  or the emulated kernel does their work (`_kernels.py`);
- streams, stream capture and CUDA graphs follow CUDA's rules (`_graphs.py`): captured work does
  not run until the graph is launched, and a sync, a host copy or an allocation outside the
  graph's pool during capture raises. Every operation below goes through `_graphs.run`, which
  records it while a stream captures.

Counting (`with cupy.counting() as c: ...`) records what the real CuPy would make the GPU do, per
launch, with its source: the first gnn frame on the Python stack outside gnn/backend (and the
backend entry point it went through, if any). The rules:
- launches: each ufunc call (with or without out=), ufunc reduce/accumulate/reduceat/outer/at;
  each function or method whose result is a new array (a reduction, take, where, concatenate,
  copy, astype to another dtype, a reshape or ascontiguousarray that must copy, ones/full/arange);
  each fill() and each setitem (a fill, copy or scatter kernel); each advanced (array or list)
  getitem; each raw kernel launch; each random draw; cupyx.scatter_add; cupyx's erf.
  A result that is a view of an operand (reshape of a contiguous array, transpose, a basic index,
  astype to the same dtype without copy) launches nothing; nor does empty/empty_like.
- hidden launches CuPy makes: zeros/zeros_like are a memset (counted also in `memsets`, as is
  fill(0)); matmul/dot first copies every operand cuBLAS cannot take as is (2-D: neither C- nor
  F-contiguous; more than 2-D: not C-contiguous, as _routines_linalg.matmul calls
  ascontiguousarray), one launch per copy (`hidden_copies`), and a batched matmul whose batch
  dimensions broadcast builds three pointer arrays (three launches); a boolean-mask getitem and
  nonzero/argwhere/flatnonzero/unique/extract/compress scan once more and read the size back.
- syncs: every host read (see `host_reads`) and every size read-back above;
- h2d: every host-to-device copy (see `host_writes`); they are copies, not launches;
- allocs: every new device array (results without out=, empty, asarray/array of host data);
- bytes: per launch, the nbytes of every device array it reads plus every one it writes (a raw
  kernel: every array argument once); `matmul_bytes` is the part inside cuBLAS calls.
"""

from __future__ import annotations

import builtins as _builtins
import math
import sys
import time
import types
from typing import Any

import numpy as _np

from cupy import _graphs, _names

# cupy.sum, cupy.max, ... are made on first use and cached as module globals (see __getattr__),
# where they shadow the builtins of the same name: the code here calls the builtins by module.

__version__ = "14.2.0+fake"
FAKE = True
# Reads that make the host wait for the GPU (bool/int/float/item/tolist/get/asnumpy of an array).
# The tests read this to check that a training step does not stall on the device.
host_reads = 0


def _host_read() -> None:
    global host_reads
    _graphs.check_sync("a device-to-host copy")
    host_reads += 1
    if _active:
        _record("sync", "host read")


# Copies of host data to the device (asarray / array of anything but a device array, and NumPy
# index or value arrays in setitem): each one waits for the copy, so a step should not need them.
host_writes = 0


def _host_write() -> None:
    global host_writes
    _graphs.check_h2d("a host-to-device copy")
    host_writes += 1
    if _active:
        _record("h2d", "host to device")


# ---- counting: launches, syncs, copies, allocations and bytes (rules in the module docstring) --


class Counts:
    """What the device did inside one `counting()` block, in total and per event."""

    def __init__(self) -> None:
        self.launches = self.syncs = self.h2d = self.allocs = self.memsets = 0
        self.hidden_copies = self.bytes = self.matmul_bytes = 0
        self.events: list[tuple[str, str, str, int]] = []  # (kind, name, source, bytes)

    @property
    def bytes_outside_matmul(self) -> int:
        """Bytes moved by launches other than the cuBLAS calls themselves."""
        return self.bytes - self.matmul_bytes

    def by_source(self, kind: str = "launches") -> dict[str, int]:
        """{source: count} of launches (or syncs, h2d, allocs, bytes), largest first."""
        kinds = {"launches": _LAUNCH_KINDS, "syncs": {"sync"}, "h2d": {"h2d"}, "allocs": {"alloc"}}
        totals: dict[str, int] = {}
        for k, _name, source, nbytes in self.events:
            if kind == "bytes" and k in _LAUNCH_KINDS:
                totals[source] = totals.get(source, 0) + nbytes
            elif kind != "bytes" and k in kinds[kind]:
                totals[source] = totals.get(source, 0) + 1
        return dict(sorted(totals.items(), key=lambda kv: -kv[1]))

    def by_name(self) -> dict[str, int]:
        """{what was launched (ufunc, function, kernel): launches}, largest first."""
        totals: dict[str, int] = {}
        for k, name, _source, _nbytes in self.events:
            if k in _LAUNCH_KINDS:
                totals[name] = totals.get(name, 0) + 1
        return dict(sorted(totals.items(), key=lambda kv: -kv[1]))

    def __repr__(self) -> str:
        return (
            f"Counts(launches={self.launches}, syncs={self.syncs}, h2d={self.h2d}, "
            f"allocs={self.allocs}, bytes={self.bytes})"
        )


_LAUNCH_KINDS = frozenset({"launch", "memset", "matmul", "copy"})
_active: list[Counts] = []


class counting:  # a function-like context manager, as CuPy names its helpers
    """`with cupy.counting() as c:` counts what the device does inside the block."""

    def __enter__(self) -> Counts:
        self.counts = Counts()
        _active.append(self.counts)
        return self.counts

    def __exit__(self, *exc: Any) -> None:
        _active.remove(self.counts)


def _source() -> str:
    """The gnn code that caused this: first gnn frame outside gnn/backend (+ the backend's)."""
    frame = sys._getframe(2)
    backend = ""
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module.startswith("gnn."):
            where = f"{module.replace('.', '/')}.py:{frame.f_code.co_name}"
            if not module.startswith("gnn.backend"):
                return f"{where} > {backend}" if backend else where
            backend = backend or where.removeprefix("gnn/")
        frame = frame.f_back
    return f"gnn/{backend}" if backend else "<outside gnn>"


def _record(kind: str, name: str, nbytes: int = 0, allocs: int = 0) -> None:
    """Add one event (a launch of some kind, a sync, an h2d copy) to every active count."""
    source = _source()
    for c in _active:
        if kind in _LAUNCH_KINDS:
            c.launches += 1
            c.bytes += nbytes
            c.matmul_bytes += nbytes if kind == "matmul" else 0
            c.memsets += kind == "memset"
            c.hidden_copies += kind == "copy"
        elif kind == "sync":
            c.syncs += 1
        elif kind == "h2d":
            c.h2d += 1
        if kind != "alloc":  # an allocation alone is the events the loop below adds
            c.events.append((kind, name, source, nbytes))
        for _ in range(allocs):
            c.allocs += 1
            c.events.append(("alloc", name, source, 0))


def _arrays(x: Any) -> list:
    """The NumPy arrays of the device arrays in x (through tuples, lists and dict values)."""
    if isinstance(x, ndarray):
        return [x._a]
    if isinstance(x, (tuple, list)):
        return [a for v in x for a in _arrays(v)]
    if isinstance(x, dict):
        return _arrays(list(x.values()))
    return []


def _new(results: list, operands: list) -> list:
    """The results that are new memory (not views of an operand)."""
    return [r for r in results if not _builtins.any(_np.may_share_memory(r, o) for o in operands)]


def _count_call(name: str, args: Any, result: Any, out: Any = None, kind: str = "launch") -> None:
    """One launch if the call wrote anything (an out=, a new result); views launch nothing."""
    operands = _arrays(args)
    results = _arrays(result)
    fresh = _new(results, operands) if out is None else []
    if out is None and not fresh:
        return
    written = results if out is not None else fresh
    nbytes = _builtins.sum(a.nbytes for a in operands) + _builtins.sum(a.nbytes for a in written)
    _record(kind, name, nbytes, allocs=len(fresh))
    if name in _SIZE_READS:
        _record("launch", name + " (size scan)", _builtins.sum(a.nbytes for a in operands))
        _record("sync", name + " (size read-back)")


# These need their output's size on the host before the kernel that writes it.
_SIZE_READS = frozenset({"nonzero", "argwhere", "flatnonzero", "unique", "extract", "compress"})


_IMPLICIT = (
    "Implicit conversion to a NumPy array is not allowed. "
    "Please use `.get()` to construct a NumPy array explicitly."
)


def _wrap(x: Any) -> Any:
    """NumPy results as device arrays: ndarrays and scalars (0-d), through tuples and lists."""
    if isinstance(x, _np.ndarray):
        if _graphs._capture is not None:
            _graphs.note_array(x)
        out = object.__new__(ndarray)
        out._a = x
        return out
    if isinstance(x, _np.generic):
        return _wrap(_np.asarray(x))
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


def _unwrap(x: Any, host_ok: bool = False) -> Any:
    """Device arrays as the NumPy arrays inside; a NumPy array is refused unless host_ok."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, _np.ndarray):
        if host_ok:
            return x
        raise TypeError(f"Unsupported type {type(x)}")
    if isinstance(x, (tuple, list)):
        return type(x)(_unwrap(v, host_ok) for v in x)
    return x


def _unwrap_kwargs(kwargs: dict, host_ok: bool = False) -> dict:
    """Keyword arguments unwrapped, except `out` (checked by _check_out)."""
    return {k: v if k == "out" else _unwrap(v, host_ok) for k, v in kwargs.items()}


def _check_out(out: Any) -> Any:
    outs = out if isinstance(out, tuple) else (out,)
    for o in outs:
        if not isinstance(o, ndarray):
            raise TypeError(f"Output arrays must be cupy.ndarray, not {type(o)}")
    return tuple(o._a for o in outs) if isinstance(out, tuple) else out._a


class ufunc:
    """A NumPy ufunc with CuPy's calling rules (keywords out, dtype, casting only)."""

    _KEYWORDS = frozenset({"out", "dtype", "casting"})

    def __init__(self, np_ufunc: _np.ufunc) -> None:
        self._u = np_ufunc
        self.__name__ = np_ufunc.__name__
        self.nin, self.nout, self.nargs = np_ufunc.nin, np_ufunc.nout, np_ufunc.nargs

    def __repr__(self) -> str:
        return f"<ufunc '{self.__name__}'>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if set(kwargs) - self._KEYWORDS:
            raise TypeError(f"Wrong arguments {kwargs}")
        result = _call(self._u, args, kwargs)
        if _active:
            out = kwargs.get("out")
            _count_call(self.__name__, args, result, out=out)
        return result

    def reduce(self, a: Any, axis: Any = 0, dtype: Any = None, out: Any = None, keepdims=False):
        x = _unwrap(a)

        def compute() -> Any:
            return self._u.reduce(x, axis=axis, dtype=dtype, keepdims=keepdims)

        if out is not None:
            target = _check_out(out)
            _graphs.run(lambda: target.__setitem__(Ellipsis, compute()), None)
            result = out
        else:
            result = _graphs.run(compute, _wrap)
        if _active:
            _count_call(self.__name__ + ".reduce", (a,), result, out=out)
        return result

    def accumulate(self, a: Any, axis: int = 0, dtype: Any = None) -> Any:
        x = _unwrap(a)
        result = _graphs.run(lambda: self._u.accumulate(x, axis=axis, dtype=dtype), _wrap)
        if _active:
            _count_call(self.__name__ + ".accumulate", (a,), result)
        return result

    def reduceat(self, a: Any, indices: Any, axis: int = 0, dtype: Any = None) -> Any:
        x, i = _unwrap(a), _unwrap(indices)
        result = _graphs.run(lambda: self._u.reduceat(x, i, axis=axis, dtype=dtype), _wrap)
        if _active:
            _count_call(self.__name__ + ".reduceat", (a, indices), result)
        return result

    def outer(self, a: Any, b: Any) -> Any:
        x, y = _unwrap(a), _unwrap(b)
        result = _graphs.run(lambda: self._u.outer(x, y), _wrap)
        if _active:
            _count_call(self.__name__ + ".outer", (a, b), result)
        return result

    def at(self, a: Any, indices: Any, b: Any = None) -> None:
        args = (_unwrap(a), _unwrap(indices)) + (() if b is None else (_unwrap(b),))
        _graphs.run(lambda: self._u.at(*args), None)
        if _active:
            _count_call(self.__name__ + ".at", (indices, b), None, out=a)


def _call(np_fn: Any, args: tuple, kwargs: dict) -> Any:
    """np_fn on the unwrapped arguments; an `out=` array is filled and returned, as in CuPy."""
    out = kwargs.get("out")
    kwargs = _unwrap_kwargs(kwargs)
    if out is not None:
        kwargs["out"] = _check_out(out)
    unwrapped = _unwrap(args)
    if _graphs._capture is None:  # the usual case, without the closure a capture records
        result = np_fn(*unwrapped, **kwargs)
        return out if out is not None else _wrap(result)
    if out is not None:
        _graphs.run(lambda: np_fn(*unwrapped, **kwargs), None)
        return out
    return _graphs.run(lambda: np_fn(*unwrapped, **kwargs), _wrap)


def _numpy_function(name: str) -> Any:
    """numpy.<name> on device arrays; an `out=` argument is filled and returned, as in CuPy."""
    np_fn = getattr(_np, name)
    if name == "count_nonzero":  # a 0-d array where NumPy gives an int (inside what a capture
        count = np_fn  # records, so that a replay counts again)

        def np_fn(*args: Any, **kwargs: Any) -> Any:
            return _np.asarray(count(*args, **kwargs))

    def fn(*args: Any, **kwargs: Any) -> Any:
        result = _call(np_fn, args, kwargs)
        if _active:
            kind = "memset" if name in ("zeros", "zeros_like") else "launch"
            _count_call(name, (args, kwargs), result, out=kwargs.get("out"), kind=kind)
        return result

    fn.__name__ = name
    return fn


# ---- arrays ------------------------------------------------------------------------------------


def _binary(name: str) -> tuple:
    def op(self: ndarray, other: Any) -> Any:
        return _lookup(name)(self, other)

    def rop(self: ndarray, other: Any) -> Any:
        return _lookup(name)(other, self)

    def iop(self: ndarray, other: Any) -> Any:
        _lookup(name)(self, other, out=self)
        return self

    return op, rop, iop


def _unary(name: str) -> Any:
    def op(self: ndarray) -> Any:
        return _lookup(name)(self)

    return op


def _count_host_index(key: Any) -> None:
    """CuPy copies list and NumPy index arrays to the device before it indexes."""
    parts = key if isinstance(key, tuple) else (key,)
    for k in parts:
        if isinstance(k, (list, _np.ndarray)):
            _host_write()


def _wrapped_index(key: Any, shape: tuple) -> Any:
    """Integer index arrays taken modulo their axis, as CuPy's integer array indexing does (it
    wraps an out-of-bounds index around where NumPy raises IndexError)."""
    parts = key if isinstance(key, tuple) else (key,)
    if _builtins.any(k is None or k is Ellipsis for k in parts) or len(parts) > len(shape):
        return key  # axes would need counting: left to NumPy
    wrapped = tuple(
        _np.mod(k, shape[i])
        if isinstance(k, _np.ndarray) and k.dtype.kind in "iu" and shape[i]
        else k
        for i, k in enumerate(parts)
    )
    return wrapped if isinstance(key, tuple) else wrapped[0]


def _is_mask(key: Any) -> bool:
    """True when an index holds a boolean array (CuPy needs the number of True on the host)."""
    parts = key if isinstance(key, tuple) else (key,)
    return _builtins.any(getattr(k, "dtype", None) == _np.bool_ for k in parts)


def _is_basic(key: Any) -> bool:
    """True when an index has no arrays or lists in it (a view, in NumPy's words)."""
    parts = key if isinstance(key, tuple) else (key,)
    return not _builtins.any(isinstance(k, (list, _np.ndarray, ndarray)) for k in parts)


class _MemoryPointer:
    def __init__(self, a: _np.ndarray) -> None:
        self.ptr = a.__array_interface__["data"][0]


class ndarray:
    """An array "on the device": a NumPy array that refuses to mix with host NumPy arrays."""

    __slots__ = ("_a", "__weakref__")
    __array_priority__ = 100.0

    def __init__(self, shape: Any, dtype: Any = float, memptr: Any = None, strides=None, order="C"):
        if memptr is not None or strides is not None:
            raise NotImplementedError("the fake cupy.ndarray takes shape, dtype and order only")
        self._a = _poisoned(_np.empty(shape, dtype=dtype, order=order))._a

    # Attributes that are not arrays come straight from NumPy.
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: _wrap(self._a.T))
    mT = property(lambda self: _wrap(self._a.mT))
    real = property(lambda self: _wrap(self._a.real))
    imag = property(lambda self: _wrap(self._a.imag))
    base = property(lambda self: None if self._a.base is None else _wrap(self._a.base))
    data = property(lambda self: _MemoryPointer(self._a))
    device = property(lambda self: cuda.Device(0))

    def __getattr__(self, name: str) -> Any:
        if name not in _names.NDARRAY_METHODS:
            raise AttributeError(f"'cupy.ndarray' object has no attribute {name!r}")
        attr = getattr(self._a, name)
        if name in ("item", "tolist", "tobytes"):  # these copy to the host in CuPy too
            _host_read()
            return attr

        def method(*args: Any, **kwargs: Any) -> Any:
            result = _call(attr, args, kwargs)
            if _active:
                if name == "fill":
                    kind = "memset" if args and args[0] == 0 else "launch"
                    _record(kind, "fill", self._a.nbytes)
                else:
                    _count_call(name, (self, args, kwargs), result, out=kwargs.get("out"))
            return result

        method.__name__ = name
        return method

    # ---- host transfers --------------------------------------------------------------------

    def get(self, stream: Any = None, order: str = "C", out: Any = None) -> _np.ndarray:
        _host_read()
        if out is not None:
            out[...] = self._a
            return out
        return _np.array(self._a, order=order, copy=True)

    def set(self, arr: _np.ndarray, stream: Any = None) -> None:
        if not isinstance(arr, _np.ndarray):
            raise TypeError(f"Only numpy.ndarray can be set to cupy.ndarray, not {type(arr)}")
        if arr.shape != self.shape:
            raise ValueError(f"Shape mismatch. Old shape: {self.shape}, new shape: {arr.shape}")
        _graphs.check_h2d("ndarray.set (a host-to-device copy)")
        self._a[...] = arr

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        raise TypeError(_IMPLICIT)

    def __array_ufunc__(self, np_ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        if np_ufunc.__name__ not in _names.UFUNCS:
            return NotImplemented
        fake = _lookup(np_ufunc.__name__)
        return (
            getattr(fake, method)(*inputs, **kwargs)
            if method != "__call__"
            else fake(*inputs, **kwargs)
        )

    def __array_function__(self, func: Any, types: Any, args: tuple, kwargs: dict) -> Any:
        if func.__name__ not in _names.FUNCTIONS:
            return NotImplemented
        return _lookup(func.__name__)(*args, **kwargs)

    # ---- Python protocols --------------------------------------------------------------------

    def __getitem__(self, key: Any) -> Any:
        _count_host_index(key)
        a, index = self._a, _unwrap(key, host_ok=True)
        if _graphs._capture is None:
            result = _wrap(a[_wrapped_index(index, a.shape)])
        elif not _is_basic(key):  # index arrays wrapped around as they are when it runs
            result = _graphs.run(lambda: a[_wrapped_index(index, a.shape)], _wrap)
        else:
            result = _wrap(_graphs.basic_view(a, index))
        if _active and not _is_basic(key):
            nbytes = result.nbytes + _builtins.sum(a.nbytes for a in _arrays(key)) + result.nbytes
            if _is_mask(key):  # CuPy scans the mask and reads the count back first
                _record(
                    "launch", "getitem (mask scan)", _builtins.sum(a.nbytes for a in _arrays(key))
                )
                _record("sync", "getitem (mask size read-back)")
            _record("launch", "getitem (advanced)", nbytes, allocs=1)
        return result

    def __setitem__(self, key: Any, value: Any) -> None:
        # CuPy copies NumPy values over for advanced (array) indices only: a basic index calls
        # fill(value), which takes a scalar.
        if isinstance(value, _np.ndarray) and value.ndim and _is_basic(key):
            raise TypeError(f"cannot fill a cupy.ndarray with a NumPy array of shape {value.shape}")
        _count_host_index(key)
        if isinstance(value, (_np.ndarray, list)):
            _host_write()
        if _active:  # the elements written, and the index and value arrays read
            written = _np.asarray(self._a[_unwrap(key, host_ok=True)]).nbytes
            read = _builtins.sum(a.nbytes for a in _arrays((key, value)))
            _record("launch", "setitem", written + read)
        a, index, v = self._a, _unwrap(key, host_ok=True), _unwrap(value, host_ok=True)
        if _graphs._capture is None:
            a[index] = v
        else:
            _graphs.run(lambda: a.__setitem__(index, v), None)

    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self) -> Any:
        if self.ndim == 0:
            raise TypeError("len() of unsized object")
        return (self[i] for i in range(len(self._a)))

    def __bool__(self) -> bool:
        _host_read()
        return bool(self._a)

    def __float__(self) -> float:
        _host_read()
        return float(self._a)

    def __int__(self) -> int:
        _host_read()
        return int(self._a)

    def __complex__(self) -> complex:
        _host_read()
        return complex(self._a)

    def __format__(self, spec: str) -> str:
        _graphs.check_sync("formatting an array")
        return format(self._a.item() if self.ndim == 0 else self._a, spec)

    def __repr__(self) -> str:
        return repr(self._a)

    def __str__(self) -> str:
        return str(self._a)

    def __copy__(self) -> ndarray:
        if _active:
            _record("launch", "copy", 2 * self._a.nbytes, allocs=1)
        return _graphs.run(self._a.copy, _wrap)

    def __deepcopy__(self, memo: dict) -> ndarray:
        return self.__copy__()

    __add__, __radd__, __iadd__ = _binary("add")
    __sub__, __rsub__, __isub__ = _binary("subtract")
    __mul__, __rmul__, __imul__ = _binary("multiply")
    __truediv__, __rtruediv__, __itruediv__ = _binary("true_divide")
    __floordiv__, __rfloordiv__, __ifloordiv__ = _binary("floor_divide")
    __mod__, __rmod__, __imod__ = _binary("remainder")
    __pow__, __rpow__, __ipow__ = _binary("power")
    __and__, __rand__, __iand__ = _binary("bitwise_and")
    __or__, __ror__, __ior__ = _binary("bitwise_or")
    __xor__, __rxor__, __ixor__ = _binary("bitwise_xor")
    __lshift__, __rlshift__, __ilshift__ = _binary("left_shift")
    __rshift__, __rrshift__, __irshift__ = _binary("right_shift")
    __eq__ = _binary("equal")[0]
    __ne__ = _binary("not_equal")[0]
    __lt__ = _binary("less")[0]
    __le__ = _binary("less_equal")[0]
    __gt__ = _binary("greater")[0]
    __ge__ = _binary("greater_equal")[0]
    __hash__ = None  # type: ignore[assignment]
    __neg__ = _unary("negative")
    __pos__ = _unary("positive")
    __abs__ = _unary("absolute")
    __invert__ = _unary("invert")

    def __matmul__(self, other: Any) -> Any:
        return matmul(self, other)

    def __rmatmul__(self, other: Any) -> Any:
        return matmul(other, self)


# ---- the module namespace ---------------------------------------------------------------------


def asarray(a: Any, dtype: Any = None, order: Any = None, *, copy: Any = None, blocking=False):
    """A device array: the same one when it already is one of this dtype, else a copy."""
    if isinstance(a, ndarray):
        if dtype is None or _np.dtype(dtype) == a.dtype:
            return a
        result = _graphs.run(lambda: a._a.astype(dtype), _wrap)
        if _active:
            _record("launch", "asarray (astype)", a.nbytes + result.nbytes, allocs=1)
        return result
    _host_write()
    result = _wrap(_np.array(_unwrap(a, host_ok=True), dtype=dtype, order=order or "K", copy=True))
    if _active:
        _record("alloc", "asarray (from host)", allocs=1)
    return result


def array(obj: Any, dtype: Any = None, copy: bool = True, order: str = "K", subok=False, ndmin=0):
    if isinstance(obj, ndarray) and not copy:
        return asarray(obj, dtype=dtype)
    host = _unwrap(obj, host_ok=True)
    if not isinstance(obj, ndarray):
        _host_write()
    result = _graphs.run(
        lambda: _np.array(host, dtype=dtype, order=order, copy=True, ndmin=ndmin), _wrap
    )
    if _active:
        if isinstance(obj, ndarray):
            _record("launch", "array (copy)", obj.nbytes + result.nbytes, allocs=1)
        else:
            _record("alloc", "array (from host)", allocs=1)
    return result


def _poisoned(a: _np.ndarray) -> ndarray:
    """New memory holds garbage on a GPU, not NumPy's usual zeros: NaN (floats) or -7 shows it."""
    if _active:
        _record("alloc", "empty", allocs=1)
    a.fill(_graphs.garbage(a.dtype))
    return _wrap(a)


def empty(shape: Any, dtype: Any = float, order: str = "C") -> ndarray:
    return _poisoned(_np.empty(shape, dtype=dtype, order=order))


def empty_like(prototype: ndarray, dtype: Any = None, order: str = "K", subok=None, shape=None):
    return _poisoned(_np.empty_like(_unwrap(prototype), dtype=dtype, order=order, shape=shape))


def asnumpy(a: Any, stream: Any = None, order: str = "C", out: Any = None) -> _np.ndarray:
    if isinstance(a, ndarray):
        return a.get(order=order, out=out)
    return _np.asarray(a, order=order)


def get_array_module(*args: Any) -> types.ModuleType:
    return sys.modules[__name__] if _builtins.any(isinstance(a, ndarray) for a in args) else _np


def _broadcasts(a: _np.ndarray, b: _np.ndarray) -> bool:
    """True when a batched matmul stretches a size-1 (or missing) batch dimension of an operand."""
    ndim = _builtins.max(a.ndim, b.ndim)
    if ndim <= 2:
        return False
    shape_a = (1,) * (ndim - a.ndim) + a.shape[:-2] if a.ndim > 1 else (1,) * (ndim - 2)
    shape_b = (1,) * (ndim - b.ndim) + b.shape[:-2] if b.ndim > 1 else (1,) * (ndim - 2)
    return _builtins.any(x != y for x, y in zip(shape_a[: ndim - 2], shape_b[: ndim - 2]))


def _gemm(name: str, a: Any, b: Any, result: Any, out: Any) -> None:
    """Count a cuBLAS call with its hidden operand copies (and pointer arrays)."""
    x, y = _unwrap(a), _unwrap(b)
    if not (isinstance(x, _np.ndarray) and isinstance(y, _np.ndarray)):
        return
    for op in (x, y):
        ndim = _builtins.max(x.ndim, y.ndim)
        contiguous = op.flags.c_contiguous or (ndim <= 2 and op.flags.f_contiguous)
        if not contiguous:
            _record("copy", f"{name} (operand copy)", 2 * op.nbytes, allocs=1)
    if _broadcasts(x, y):
        for _ in range(3):
            _record("launch", f"{name} (batch pointers)", 0, allocs=1)
    written = _unwrap(result)
    _record("matmul", name, x.nbytes + y.nbytes + written.nbytes, allocs=int(out is None))


def matmul(a: Any, b: Any, **kwargs: Any) -> Any:
    result = _call(_np.matmul, (a, b), kwargs)
    if _active:
        _gemm("matmul", a, b, result, kwargs.get("out"))
    return result


def dot(a: Any, b: Any, out: Any = None) -> Any:
    result = _call(_np.dot, (a, b), {} if out is None else {"out": out})
    if _active:
        _gemm("dot", a, b, result, out)
    return result


class RawModule:
    """Kernels from CUDA source, run by NumPy stand-ins or the CPU emulator (see _kernels.py)."""

    def __init__(self, code: str | None = None, options: tuple = (), **kwargs: Any) -> None:
        from cupy import _kernels

        if code is None:
            raise NotImplementedError("the fake RawModule takes code=, not a path")
        if not isinstance(options, tuple):
            raise TypeError(f"options must be a tuple of str, got {type(options).__name__}")
        self._kernels = _kernels
        self._signatures = _kernels.parse(code)
        # GNN_FAKE_CUDA=emulate: compiled now, as NVRTC compiles at this point in CuPy
        self._library = (
            _kernels.emulator().load(code, self._signatures) if _kernels.EMULATE else None
        )

    def get_function(self, name: str) -> Any:
        if name not in self._signatures:
            raise RuntimeError(f"CUDA_ERROR_NOT_FOUND: named symbol not found ({name})")
        bound, params = self._signatures[name]
        return self._kernels.Function(name, bound, params, ndarray, _unwrap, self._library)


def _lookup(name: str) -> Any:
    """cupy.<name>: what this module defines, else what __getattr__ makes."""
    value = globals().get(name)
    return value if value is not None else __getattr__(name)


def __getattr__(name: str) -> Any:
    """Ufuncs and functions CuPy has, made on first use; NumPy's dtypes and constants as is."""
    if name in _names.UFUNCS:
        value: Any = ufunc(getattr(_np, name))
    elif name in _names.FUNCTIONS and hasattr(_np, name):
        value = _numpy_function(name)
    elif name in _names.FUNCTIONS:
        raise AttributeError(f"the fake cupy does not provide {name!r}")
    elif not name.startswith("_") and hasattr(_np, name) and not callable(getattr(_np, name)):
        value = getattr(_np, name)
    elif not name.startswith("_") and isinstance(getattr(_np, name, None), type):
        value = getattr(_np, name)  # dtypes: cupy.float32 is numpy.float32
    else:
        raise AttributeError(f"module 'cupy' has no attribute {name!r}")
    globals()[name] = value
    return value


# ---- submodules: cuda, random, lib.stride_tricks ----------------------------------------------


def _submodule(name: str) -> types.ModuleType:
    module = types.ModuleType(f"cupy.{name}")
    sys.modules[module.__name__] = module
    return module


def _kernels_mode() -> str:
    import os

    return os.environ.get("GNN_FAKE_CUDA", "")


class _Device:
    """cupy.cuda.Device: a context manager; device 0 is the only one."""

    def __init__(self, device: int | None = None) -> None:
        self.id = 0 if device is None else int(device)
        if self.id != 0:
            raise RuntimeError(f"CUDARuntimeError: cudaErrorInvalidDevice (device {self.id})")
        # Emulated kernels run on CPU threads: a 2-SM device keeps grids small, and makes the
        # grid-stride loops go round many times.
        sms = 2 if _kernels_mode() == "emulate" else 132
        self.attributes = {"MultiProcessorCount": sms}
        self.compute_capability = "90"

    def __enter__(self) -> _Device:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def synchronize(self) -> None:
        _graphs.check_sync("cudaDeviceSynchronize", whole_device=True)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Device) and other.id == self.id

    def __hash__(self) -> int:
        return self.id


cuda = _submodule("cuda")
cuda.Device = _Device
cuda.runtime = types.SimpleNamespace(
    CUDARuntimeError=_graphs.CUDARuntimeError,
    streamCaptureModeGlobal=_graphs.streamCaptureModeGlobal,
    streamCaptureModeThreadLocal=_graphs.streamCaptureModeThreadLocal,
    streamCaptureModeRelaxed=_graphs.streamCaptureModeRelaxed,
    getDeviceCount=lambda: 1,
    getDeviceProperties=lambda i: {"name": b"fake GPU (NumPy)", "major": 9, "minor": 0},
    memGetInfo=lambda: (2**34, 2**35),
    runtimeGetVersion=lambda: 13000,
    driverGetVersion=lambda: 13000,
)
cuda.get_device_id = lambda: 0
cuda.Stream = _graphs.Stream
cuda.Graph = _graphs.Graph
cuda.get_current_stream = _graphs.get_current_stream


class _Event:
    """cupy.cuda.Event: records the host clock (work here is done when its call returns)."""

    def __init__(self, block: bool = False, disable_timing: bool = False) -> None:
        self._t: float | None = None

    def record(self, stream: Any = None) -> None:
        self._t = time.perf_counter()

    def synchronize(self) -> None:
        return None


def _elapsed_ms(start: _Event, end: _Event) -> float:
    if start._t is None or end._t is None:
        raise RuntimeError("CUDARuntimeError: cudaErrorInvalidResourceHandle (event not recorded)")
    return (end._t - start._t) * 1e3


class _MemoryPool:
    def malloc(self, size: int) -> _MemoryPointer:
        return _MemoryPointer(_np.empty(0))

    def free_all_blocks(self) -> None:
        return None

    def used_bytes(self) -> int:
        return 0

    def total_bytes(self) -> int:
        return 0


cuda.Event = _Event
cuda.get_elapsed_time = _elapsed_ms
_memory_pool = _MemoryPool()


def get_default_memory_pool() -> _MemoryPool:
    return _memory_pool


class _UsingAllocator:
    """cupy.cuda.using_allocator: new device memory comes from `allocator` inside the block."""

    def __init__(self, allocator: Any = None) -> None:
        self.allocator, self.before = allocator, None

    def __enter__(self) -> None:
        self.before, _graphs.allocator = _graphs.allocator, self.allocator

    def __exit__(self, *exc: Any) -> None:
        _graphs.allocator = self.before


def _set_allocator(allocator: Any = None) -> None:
    _graphs.allocator = allocator


cuda.using_allocator = _UsingAllocator
cuda.set_allocator = _set_allocator
cuda.get_allocator = lambda: _graphs.allocator or _memory_pool.malloc


class _Generator:
    """cupy.random.Generator: NumPy's generator behind CuPy's (smaller) set of methods."""

    def __init__(self, seed: Any) -> None:
        self._g = _np.random.default_rng(seed)

    def __getattr__(self, name: str) -> Any:
        if name not in _names.GENERATOR_METHODS:
            raise AttributeError(f"'cupy.random.Generator' object has no attribute {name!r}")
        draw = getattr(self._g, name)

        def method(*args: Any, **kwargs: Any) -> Any:
            a, k = _unwrap(args), _unwrap_kwargs(kwargs)
            result = _graphs.run(lambda: draw(*a, **k), _wrap)
            if _active:
                _count_call("random." + name, (), result)
            return result

        return method


random = _submodule("random")
random.Generator = _Generator
random.default_rng = _Generator

lib = _submodule("lib")
lib.stride_tricks = _submodule("lib.stride_tricks")


def _as_strided(x: ndarray, shape: Any = None, strides: Any = None) -> ndarray:
    return _wrap(_np.lib.stride_tricks.as_strided(_unwrap(x), shape=shape, strides=strides))


lib.stride_tricks.as_strided = _as_strided


def _erf(x: ndarray) -> ndarray:
    """The error function, elementwise (for cupyx.scipy.special)."""
    a = _unwrap(x)
    if _active:
        _record("launch", "erf", 2 * a.nbytes, allocs=1)
    return _graphs.run(
        lambda: _np.vectorize(math.erf, otypes=[a.dtype])(a) if a.size else a.copy(), _wrap
    )
