"""Functions that make new tensors: tensor, zeros, ones, full, randn, rand, arange, eye, ..."""

from __future__ import annotations

from typing import Any

import numpy as np

from gnn import config
from gnn.backend import Backend, get_backend
from gnn.dtypes import is_floating, parse_dtype
from gnn.tensor import Tensor, shape_args


def _shape(size: tuple) -> tuple[int, ...]:
    """The shape from `*size` arguments: zeros(2, 3) and zeros((2, 3)) alike."""
    shape = tuple(int(s) for s in shape_args(size))
    if any(s < 0 for s in shape):
        raise ValueError(f"negative dimension in shape {shape}")
    return shape


def _float_dtype(dtype: Any) -> np.dtype:
    return config.get_default_dtype() if dtype is None else parse_dtype(dtype)


def _random_float_dtype(op: str, dtype: Any) -> np.dtype:
    """The dtype of random samples (the default float when not given); integers are refused."""
    dt = _float_dtype(dtype)
    if not is_floating(dt):
        raise TypeError(f"{op}: dtype must be floating, got {dt} (use randint for integers)")
    return dt


def _new(arr: Any, be: Backend, requires_grad: bool) -> Tensor:
    return Tensor._make(arr, be).requires_grad_(requires_grad)


def tensor(data: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of `data` (lists, scalars, NumPy/CuPy arrays or Tensors)."""
    t = Tensor(data, dtype, device, requires_grad)
    if t.array is data:  # a NumPy or CuPy array already of the right dtype and device
        t.array = data.copy()  # tensor() copies, as torch.tensor does; from_numpy shares
    return t


def from_numpy(array: np.ndarray) -> Tensor:
    """A CPU tensor sharing memory with a NumPy array."""
    return Tensor._make(np.asarray(array), get_backend("cpu"), False)  # an ndarray is kept as is


def empty(shape: tuple, dtype: Any = None, device: Any = None) -> Tensor:
    """An uninitialised tensor (for layers that initialise their parameters right after)."""
    be = get_backend(device)
    return _new(be.xp.empty(tuple(shape), dtype=_float_dtype(dtype)), be, False)


def zeros(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros."""
    be = get_backend(device)
    return _new(be.xp.zeros(_shape(size), dtype=_float_dtype(dtype)), be, requires_grad)


def ones(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of ones."""
    be = get_backend(device)
    return _new(be.xp.ones(_shape(size), dtype=_float_dtype(dtype)), be, requires_grad)


def full(
    size: Any, fill_value: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    """A tensor filled with one value (dtype from the value when not given, as in PyTorch)."""
    be = get_backend(device)
    if dtype is None:  # as PyTorch: bool for a bool, int64 for an int, else the default float
        dtype = {bool: "bool", int: "int64"}.get(type(fill_value), config.get_default_dtype())
    shape = _shape((size,) if isinstance(size, int) else (tuple(size),))  # any iterable size
    return _new(be.xp.full(shape, fill_value, dtype=parse_dtype(dtype)), be, requires_grad)


def randn(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Samples from the standard normal distribution (seeded by gnn.manual_seed)."""
    be = get_backend(device)
    return _new(be.randn(_shape(size), _random_float_dtype("randn", dtype)), be, requires_grad)


def rand(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Samples from the uniform distribution on [0, 1) (seeded by gnn.manual_seed)."""
    be = get_backend(device)
    return _new(be.rand(_shape(size), _random_float_dtype("rand", dtype)), be, requires_grad)


def randint(
    low: int, high: Any = None, size: Any = None, dtype: Any = None, device: Any = None
) -> Tensor:
    """Integers drawn uniformly from [low, high); `randint(high, size)` means low = 0."""
    if size is None:  # randint(high, size), as in PyTorch
        low, high, size = 0, low, high
    elif high is None:  # randint(high, size=...)
        low, high = 0, low
    if size is None or high is None:
        raise TypeError("randint: expected randint(low, high, size) or randint(high, size)")
    if not low < high:
        raise ValueError(f"randint: low ({low}) must be less than high ({high})")
    dt = parse_dtype("int64" if dtype is None else dtype)
    if dt.kind not in "iu":
        raise TypeError(f"randint: dtype must be an integer dtype, got {dt}")
    be = get_backend(device)
    shape = _shape((size,) if isinstance(size, int) else (tuple(size),))
    return _new(be.randint(low, high, shape, dt), be, False)


def arange(
    start: Any,
    end: Any = None,
    step: Any = 1,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """Evenly spaced values in [start, end) (int64 for integer arguments, as in PyTorch)."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        ints = all(isinstance(v, int) for v in (start, end, step))
        dtype = "int64" if ints else config.get_default_dtype()
    be = get_backend(device)
    return _new(be.xp.arange(start, end, step, dtype=parse_dtype(dtype)), be, requires_grad)


def linspace(start: float, end: float, steps: int, dtype: Any = None, device: Any = None) -> Tensor:
    """`steps` evenly spaced values from start to end, inclusive."""
    be = get_backend(device)
    return _new(be.xp.linspace(start, end, steps, dtype=_float_dtype(dtype)), be, False)


def eye(n: int, m: int | None = None, dtype: Any = None, device: Any = None) -> Tensor:
    """The identity matrix (n x m)."""
    be = get_backend(device)
    return _new(be.xp.eye(n, m, dtype=_float_dtype(dtype)), be, False)


def _like(t: Tensor, dtype: Any, device: Any, random: str = "") -> tuple[Any, np.dtype]:
    """The backend and dtype of a *_like result: t's unless given; `random` names a sampling
    function, whose dtype must be floating."""
    be = t._be if device is None else get_backend(device)
    dt = t.dtype if dtype is None else parse_dtype(dtype)
    return be, _random_float_dtype(random, dt) if random else dt


def zeros_like(
    t: Tensor, dtype: Any = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    """Zeros with t's shape, dtype and device."""
    be, dt = _like(t, dtype, device)
    return _new(be.xp.zeros(t.shape, dtype=dt), be, requires_grad)


def ones_like(
    t: Tensor, dtype: Any = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    """Ones with t's shape, dtype and device."""
    be, dt = _like(t, dtype, device)
    return _new(be.xp.ones(t.shape, dtype=dt), be, requires_grad)


def full_like(t: Tensor, fill_value: Any, dtype: Any = None, device: Any = None) -> Tensor:
    """fill_value with t's shape, dtype and device."""
    be, dt = _like(t, dtype, device)
    return _new(be.xp.full(t.shape, fill_value, dtype=dt), be, False)


def randn_like(t: Tensor, dtype: Any = None, device: Any = None) -> Tensor:
    """Standard normal samples with t's shape, dtype and device."""
    be, dt = _like(t, dtype, device, "randn_like")
    return _new(be.randn(t.shape, dt), be, False)


def rand_like(t: Tensor, dtype: Any = None, device: Any = None) -> Tensor:
    """Uniform [0, 1) samples with t's shape, dtype and device."""
    be, dt = _like(t, dtype, device, "rand_like")
    return _new(be.rand(t.shape, dt), be, False)
