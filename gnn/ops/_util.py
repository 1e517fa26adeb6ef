"""Small helpers shared by the ops: turning arguments into Tensors, normalising dims."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gnn import config
from gnn.autograd import Function
from gnn.tensor import Tensor


class Configured(Function):
    """A Function whose settings (apply's keyword arguments) are the fields its class body declares
    (`p: float`): each subclass is a dataclass, its __init__ one store per field."""

    def __init_subclass__(cls) -> None:
        dataclass(eq=False, repr=False)(cls)  # eq=False: Functions are keys by identity


def as_tensor(x: Any, like: Tensor) -> Tensor:
    """`x` as a Tensor on `like`'s device; Python scalars take `like`'s dtype (as in PyTorch)."""
    if isinstance(x, Tensor):
        return x
    be = like._be
    if isinstance(x, int):  # bool included
        dt = like.dtype
    elif isinstance(x, float):
        dt = like.dtype if like.dtype.kind == "f" else config.get_default_dtype()
    else:
        arr = np.asarray(x) if not be.is_array(x) else x
        dt = arr.dtype
        if dt.kind == "f" and like.dtype.kind == "f" and arr.ndim == 0:
            dt = like.dtype
        return Tensor._make(be.asarray(arr, dtype=dt), be, False)
    return Tensor._make(be.scalar(x, dt), be, False)


def pair(a: Any, b: Any) -> tuple[Tensor, Tensor]:
    """Both operands as Tensors on one device (at least one of them is a Tensor).

    A float operand meeting an integer or bool one keeps its dtype, as in PyTorch (NumPy would
    promote float32 with int64 to float64).
    """
    if isinstance(a, Tensor):
        a, b = a, as_tensor(b, a)
    elif isinstance(b, Tensor):
        a, b = as_tensor(a, b), b
    else:
        raise TypeError(f"expected a Tensor operand, got {type(a).__name__} and {type(b).__name__}")
    if a.dtype.kind == "f" and b.dtype.kind in "iub":
        b = cast_exact(b, a.dtype)
    elif b.dtype.kind == "f" and a.dtype.kind in "iub":
        a = cast_exact(a, b.dtype)
    return a, b


def cast_exact(t: Tensor, dtype: Any) -> Tensor:
    """An integer or bool tensor (never differentiable) as `dtype`, outside the graph."""
    return Tensor._make(t.array.astype(dtype), t._be, False)


def norm_dim(dim: int, ndim: int, op: str) -> int:
    """A dim in [-ndim, ndim) as a non-negative index, or a clear IndexError."""
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"{op}: dim {dim} is out of range for a tensor of {ndim} dims")
    return dim % n


def norm_dims(dim: Any, ndim: int, op: str) -> tuple[int, ...] | None:
    """None (all dims) or a tuple of non-negative dims."""
    if dim is None:
        return None
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    axes = tuple(norm_dim(d, ndim, op) for d in dims)
    return axes if ndim else None  # a 0-d tensor takes dim 0 or -1 but has no axis to name


def check_broadcast(op: str, a: Any, b: Any) -> None:
    """Raise a gnn-worded error when two shapes do not broadcast."""
    for m, n in zip(reversed(a.shape), reversed(b.shape)):
        if m != n and m != 1 and n != 1:
            shapes = f"{tuple(a.shape)} and {tuple(b.shape)}"
            raise ValueError(f"{op}: shapes {shapes} cannot be broadcast together")


def column_sums(be: Any, a: Any, out: Any = None) -> Any:
    """The sums of the columns of a 2-D array (a bias gradient), as ones @ a for float32/64.

    BLAS does it in one pass and sums more exactly than NumPy's row-by-row reduction: 35 against
    81 microseconds for (1024, 768) float32, with under half the error. Other dtypes use sum().
    The backend's cached ones vector saves a fill (a kernel launch on the GPU) per call. `out`:
    an array to write the sums into (a gradient home, see Function.grad_home), returned.
    """
    if a.dtype.kind == "f" and a.dtype.itemsize >= 4:
        ones = be.ones_vector(a.shape[0], a.dtype)
        return ones @ a if out is None else be.xp.matmul(ones, a, out=out)
    return a.sum(axis=0, out=out)
