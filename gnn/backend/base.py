"""The backend interface: what gnn asks of the object that owns arrays on one device, and that
device (`Device`, made from names such as "cuda:1" by `parse_device`).

`Backend` documents every member a backend has. What works alike on NumPy and CuPy it implements
once, through `self.xp` (the array module); the abstract methods are what the libraries do
differently, and each backend implements them: NumpyBackend (numpy.py) and CupyBackend (cuda.py)
hold only those, plus CuPy's device context where a call needs it. The error checks here raise
at once; CupyBackend overrides them to flag on the device and raise later. `KernelBackend` adds
the hook gnn's CUDA kernels launch through (CupyBackend implements it; for gnn/backend/fused
only).
Above gnn/backend/, code reaches a backend through `Tensor.backend` or `get_backend(device)` and
uses only what is declared here. A new backend is one new file subclassing `Backend`; fused ops
need nothing of it (their references run on its `xp`).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gnn import config

__all__ = ["Backend", "Device", "KernelBackend", "id_range_message", "parse_device"]

# ---- devices: what every backend holds and every array lives on (gnn.device) -----------------


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


_default_device: str | None = None  # None: GNN_DEVICE's on first use, else "cpu"


def get_default_device() -> str:
    """The device of new tensors: set_default_device's, else GNN_DEVICE's, else "cpu"."""
    global _default_device
    if _default_device is None:
        _default_device = os.environ.get("GNN_DEVICE", "cpu").strip() or "cpu"
    return _default_device


def parse_device(device: Any) -> Device:
    """Parse "cpu", "cuda", "cuda:1", a Device, or None (the default device)."""
    if device is None:  # set_default_device checks its argument: a bad default is GNN_DEVICE's
        source = " (the default device, from the GNN_DEVICE environment variable)"
        return Device(*_split_name(get_default_device(), source))
    if isinstance(device, Device):
        return device
    if hasattr(device, "device") and isinstance(device.device, Device):  # a Tensor
        return device.device
    return Device(*_split_name(device))


# ---- the backend interface ------------------------------------------------------------------


def id_range_message(op: str, bad: int, num: int) -> str:
    """The error for an id outside 0..num-1 of a table of num rows."""
    return f"{op}: id {bad} is out of range for an embedding of {num} rows (valid: 0..{num - 1})"


class _Cache(dict):
    """Values made on first use by `make(key[0], key[1])` (later parts of a key only tell keys
    apart) and kept: arrays, read-only where the library can mark them (NumPy: so a write to a
    shared array raises in the CPU suite; CuPy has no such flag), or a GPU's compiled kernels.
    One holding `size` values starts afresh (many batch lengths, or a schedule's many numbers)."""

    def __init__(self, make: Callable, size: int | None = None) -> None:
        super().__init__()
        self.make = make
        self.size = size

    def __missing__(self, key: tuple) -> Any:
        if self.size is not None and len(self) >= self.size:
            self.clear()
        a = self[key] = self.make(key[0], key[1])
        if isinstance(a, np.ndarray):
            a.flags.writeable = False
        return a


class Backend(ABC):
    """Arrays on one device, and the few operations that differ between array libraries.

    One object per device: copies of tensors and modules share it (copying returns the same
    object) and unpickling finds it again by its device.
    """

    name: str  # "cpu" or "cuda": fused ops launch their kernels on "cuda" only
    xp: Any  # the array module (numpy or cupy), the one array API for all other math
    device: Device

    def __init__(self, xp: Any, device: Device) -> None:
        self.xp = xp
        self.device = device
        self._seed_generation = -1  # the seed generation of _rng: none yet, so rng() makes one
        self._ones_vectors = _Cache(xp.ones, size=64)  # by (n, dtype)
        # by (values, dtype); never cleared: autograd's seed views the 1 kept here and, on CuPy,
        # tells it from other arrays by its pointer (autograd._is_seed)
        self._constants = _Cache(self.asarray)
        self._scalars = _Cache(self.asarray, size=1024)  # by (value, dtype, repr(value))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.device})"

    # One backend object per device: copies of tensors and modules share it (copy.deepcopy of a
    # model must not try to copy the array module), and unpickling finds it again by device.
    # (__reduce__ alone would serve deepcopy too, but deep-copying a Linear measured 5% slower
    # that way, on the 2 vCPU VM of docs/performance.md.)
    def __deepcopy__(self, memo: dict) -> Backend:
        return self

    def __reduce__(self) -> tuple:
        from gnn.backend import get_backend

        return (get_backend, (str(self.device),))

    # ---- arrays --------------------------------------------------------------------------------

    def is_array(self, a: Any) -> bool:
        """True for an array of this backend's array module."""
        return isinstance(a, self.xp.ndarray)

    def asarray(self, data: Any, dtype: Any = None) -> Any:
        """An array on this device (no copy when `data` already is one of the right dtype)."""
        return self.xp.asarray(data, dtype=dtype)

    @abstractmethod
    def to_numpy(self, a: Any) -> np.ndarray:
        """A host copy of `a` (a GPU first raises any error its kernels flagged)."""

    def from_dlpack(self, obj: Any) -> Any:
        """An array on this device sharing memory with a DLPack-capable object."""
        return self.xp.from_dlpack(obj)

    @abstractmethod
    def synchronize(self) -> None:
        """Wait until the work queued on this device is done."""

    # ---- ones vectors, constants and scalars: made once, shared, so never written to ---------

    def ones_vector(self, n: int, dtype: Any) -> Any:
        """A cached vector of n ones (bias gradients as ones @ g); shared, so never written to."""
        return self._ones_vectors[n, np.dtype(dtype)]

    def constant(self, values: tuple, dtype: Any) -> Any:
        """A 1-D array of `values` on this device, made once and cached: no host-to-device copy
        (on a GPU, a wait) each time an op needs the same small table. Do not write to it."""
        return self._constants[tuple(values), np.dtype(dtype)]

    def scalar(self, value: Any, dtype: Any) -> Any:
        """A 0-d array holding a Python number (an operand such as the 2 of x * 2), made once
        and cached: on a GPU, x * 2 copies the 2 over once, not on every call. Do not write to
        it (the CPU's arrays are read-only, to hold the ops to that)."""
        # repr keeps -0.0 apart from 0.0; a NaN is keyed as np.nan (no NaN equals another)
        return self._scalars[value if value == value else np.nan, np.dtype(dtype), repr(value)]

    # ---- random numbers: one generator per device, re-seeded by gnn.manual_seed --------------

    def _new_generator(self, seed: int | None) -> Any:
        """A new generator of the array library's, on this device."""
        return self.xp.random.default_rng(seed)

    def rng(self) -> Any:
        """This device's generator, re-seeded after every `gnn.manual_seed`."""
        generation, seed = config.seed_state()
        if generation != self._seed_generation:  # a first call, or gnn.manual_seed since
            self._rng = self._new_generator(seed)
            self._seed_generation = generation
        return self._rng

    def manual_seed(self, seed: int) -> None:
        """Seed this device's generator alone (gnn.cuda.manual_seed); a later gnn.manual_seed
        re-seeds it with the others."""
        self._rng = self._new_generator(int(seed))
        self._seed_generation = config.seed_state()[0]

    @abstractmethod
    def get_rng_state(self) -> dict:
        """The generator's state, for checkpoints ({} where the library hides it)."""

    @abstractmethod
    def set_rng_state(self, state: dict) -> None:
        """Restore a state from get_rng_state."""

    def randn(self, shape: tuple, dtype: Any) -> Any:
        """Standard normal samples."""
        # float16/bfloat16 are drawn in float64 and rounded (NumPy's and CuPy's generators do
        # not make them)
        wide = dtype not in (np.float32, np.float64)
        out = self.rng().standard_normal(shape, dtype=np.float64 if wide else dtype)
        return out.astype(dtype, copy=False)

    def rand(self, shape: tuple, dtype: Any) -> Any:
        """Uniform samples in [0, 1)."""
        wide = dtype not in (np.float32, np.float64)
        out = self.rng().random(shape, dtype=np.float64 if wide else dtype)
        return out.astype(dtype, copy=False)

    def randint(self, low: int, high: int, shape: tuple, dtype: Any) -> Any:
        """Integers in [low, high)."""
        return self.rng().integers(low, high, size=shape, dtype=dtype)

    @abstractmethod
    def permutation(self, n: int) -> Any:
        """A random permutation of 0..n-1."""

    # ---- math the array libraries do differently ----------------------------------------------

    @abstractmethod
    def index_add(self, target: Any, index: Any, values: Any) -> None:
        """target[index] += values, accumulating over repeated indices (in place)."""

    @abstractmethod
    def erf(self, x: Any) -> Any:
        """The error function, elementwise."""

    # ---- error checks: written here to raise at once; a GPU flags on the device, raises later --

    def value_range(self, a: Any) -> tuple[int, int]:
        """(min, max) of a non-empty integer array, as Python ints."""
        return int(a.min()), int(a.max())

    def check_ids(self, ids: Any, num: int, op: str) -> None:
        """IndexError for an id outside 0..num-1: raised here at once (a GPU backend flags it
        on the device instead, for the next `check_errors()`)."""
        if ids.size:
            lo, hi = self.value_range(ids)
            if lo < 0 or hi >= num:
                raise IndexError(id_range_message(op, lo if lo < 0 else hi, num))

    def check_errors(self) -> None:
        """Wait for the device, then raise (and clear) an error flagged since the last check."""
        return None  # nothing is ever pending where every check raises at once


class KernelBackend(Backend):
    """A backend with gnn's CUDA kernels: the hook a fused op's `cuda(be, ...)` launches through.

    The underscored members are for gnn/backend/fused only; a launcher reaches the array
    library through `xp` alone.
    """

    _cuda_device: Any  # the library's device object: `with be._cuda_device:` makes it current

    @abstractmethod
    def _launch(self, module: str, name: str, blocks: int, threads: int, args: tuple) -> None:
        """Queue kernel `name` of kernels/<module>.cu with a 1-D grid on the current stream."""

    @abstractmethod
    def _sms(self) -> int:
        """The number of streaming multiprocessors (to size grid-stride launches)."""

    def _dummy_f32(self) -> Any:
        """A float32 array standing in for an optional pointer the kernel will not read."""
        return self.ones_vector(1, np.float32)  # any will do: shared, as the kernels only read it

    @abstractmethod
    def _error_slots(self) -> Any:
        """The device's int64 error slots that kernels flag bad inputs in (see check_errors)."""
