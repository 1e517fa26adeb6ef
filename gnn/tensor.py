"""Tensor: an array on a device, plus what autograd needs (requires_grad, grad, creator).

This file holds what a Tensor is. Its op methods and operators (`t.sum()`, `a + b`, `t.to()`) are
registered with their ops in gnn/ops/ and set on the class by gnn/ops/registry.py as each op
module loads (importing gnn loads them all); this layer imports nothing above it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from gnn import autograd, config
from gnn.backend import Backend, Device, get_backend, parse_device
from gnn.dtypes import is_floating, parse_dtype


class Tensor:
    """A multi-dimensional array that can record the operations applied to it.

    `t.array` is the backend array itself (NumPy on the CPU, CuPy on a GPU; no copy, writes go
    straight to the tensor). `t.numpy()` is the values as a NumPy array on any device.
    """

    __slots__ = ("array", "_be", "requires_grad", "grad", "_creator", "__weakref__")
    __array_priority__ = 1000  # so numpy_array * tensor calls Tensor.__rmul__
    _plain: type[Tensor]  # Tensor (set below the class)
    _be: Backend

    def __init__(
        self, data: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False
    ) -> None:
        self.array, self._be = _to_array(data, dtype, device)
        self.grad: Tensor | None = None
        self._creator: autograd.Function | None = None
        self.requires_grad_(requires_grad)  # sets requires_grad, checking the dtype

    @classmethod
    def _make(cls, data: Any, be: Backend, requires_grad: bool = False) -> Tensor:
        """A tensor on backend `be` holding the array `data` itself (no copy, no checks); `wrap`
        is its public name, for code above the ops that computes raw arrays (optimizers,
        metrics) and hands them back as tensors."""
        t = cls.__new__(cls)
        t.array = data
        t._be = be
        t.requires_grad = requires_grad
        t.grad = None
        t._creator = None
        return t

    wrap = _make

    # ---- attributes ----------------------------------------------------------------------------

    @property
    def backend(self) -> Backend:
        """The backend that owns this tensor's array (`.xp` is its array module)."""
        return self._be

    @property
    def data(self) -> Tensor:
        """This tensor's storage as a new tensor cut from the graph, as PyTorch's `.data`.

        The result shares memory with this tensor, does not require grad and has no creator, so
        in-place changes to it (`p.data.add_(g, alpha=-lr)`, `p.data.copy_(w)`,
        `nn.init.normal_(p.data)`) change this tensor without autograd's in-place checks.
        The raw backend array is `array`.
        """
        return self.detach()

    @data.setter
    def data(self, value: Tensor) -> None:
        # As PyTorch's `p.data = t`: this tensor takes t's storage (shape, dtype and device may
        # change) and keeps its own requires_grad, grad and place in the graph.
        if not isinstance(value, Tensor):
            raise TypeError(
                f"data: expected a Tensor, got {type(value).__name__}; wrap it with gnn.tensor() "
                "or assign a backend array to .array"
            )
        self.array, self._be = value.array, value._be

    @property
    def shape(self) -> tuple[int, ...]:
        return self.array.shape  # a tuple already, for NumPy and CuPy arrays

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype

    @property
    def device(self) -> Device:
        return self._be.device

    @property
    def is_cuda(self) -> bool:
        """True when the tensor lives on a CUDA GPU."""
        return self._be.device.type == "cuda"

    @property
    def is_cpu(self) -> bool:
        """True when the tensor lives in host memory."""
        return self._be.device.type == "cpu"

    @property
    def ndim(self) -> int:
        return self.array.ndim

    @property
    def is_leaf(self) -> bool:
        return self._creator is None

    def size(self, dim: int | None = None) -> Any:
        return self.shape if dim is None else self.shape[dim]

    def dim(self) -> int:
        return self.array.ndim

    def numel(self) -> int:
        """The number of elements (also torch.numel(x) and nelement())."""
        return int(self.array.size)

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __repr__(self) -> str:
        body = np.array2string(self.numpy(), separator=", ", precision=4, prefix="tensor(")
        extra = "" if self.device.type == "cpu" else f", device='{self.device}'"
        # As PyTorch: the dtype is shown unless the values imply it (default float, int64, bool).
        if self.dtype not in (config.get_default_dtype(), np.int64, np.bool_):
            extra += f", dtype={self.dtype}"
        if self._creator is not None:
            extra += f", grad_fn={type(self._creator).__name__}"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    # ---- conversion ----------------------------------------------------------------------------

    def numpy(self) -> np.ndarray:
        """The values as a NumPy array (shares memory on the CPU, a copy from the GPU)."""
        return self._be.to_numpy(self.array)

    def item(self) -> Any:
        if self.array.size != 1:
            raise ValueError(f"item(): tensor has {self.array.size} elements, expected exactly 1")
        return self.numpy().reshape(()).item()

    def tolist(self) -> Any:
        return self.numpy().tolist()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        if self.array.size != 1:
            raise RuntimeError(
                f"the truth value of a tensor with {self.array.size} elements is ambiguous; "
                "use .any() or .all()"
            )
        return bool(self.item())

    def __index__(self) -> int:
        if self.dtype.kind not in "iub" or self.array.size != 1:
            raise TypeError("only integer tensors of one element can be used as an index")
        return int(self.item())

    def __dlpack__(self, **kwargs: Any) -> Any:
        """A DLPack capsule of this tensor's memory (zero-copy; keyword arguments as the
        protocol defines them: stream, max_version, dl_device, copy)."""
        return self.array.__dlpack__(**kwargs)

    def __dlpack_device__(self) -> tuple[int, int]:
        """(DLPack device type, index): (1, 0) on the CPU, (2, N) on GPU N."""
        return self.array.__dlpack_device__()

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.asarray(self.numpy(), dtype=dtype)

    def detach(self) -> Tensor:
        """The same data, cut from the graph."""
        return Tensor._make(self.array, self._be, False)

    def contiguous(self) -> Tensor:
        return self

    # ---- autograd ------------------------------------------------------------------------------

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and not is_floating(self.dtype):
            raise RuntimeError(
                f"only floating-point tensors can require gradients, got dtype {self.dtype}"
            )
        if not requires_grad and self._creator is not None:
            raise RuntimeError("requires_grad_(False) on a non-leaf tensor; use .detach()")
        self.requires_grad = bool(requires_grad)
        return self

    def backward(self, gradient: Any = None, retain_graph: bool = False) -> None:
        """Compute the gradient of this tensor with respect to the leaves that require grad."""
        autograd.backward(self, gradient, retain_graph=retain_graph)

    # ---- in-place helpers (no graph; for initialisation and optimizers) -------------------------

    def _check_inplace(self, what: str) -> None:
        if config.is_grad_enabled() and (self.requires_grad or self._creator is not None):
            raise RuntimeError(
                f"{what}: in-place change of a tensor that requires grad; "
                "do it under gnn.no_grad() or on .data"
            )

    def _assign(self, what: str, values: Any, index: Any = ...) -> Tensor:
        """self[index] = values, outside the graph (the in-place methods below)."""
        self._check_inplace(what)
        self.array[index] = values
        return self

    def zero_(self) -> Tensor:
        return self._assign("zero_", 0)

    def fill_(self, value: Any) -> Tensor:
        return self._assign("fill_", value)

    def copy_(self, src: Any) -> Tensor:
        """Copy values from `src` (any device, broadcastable shape) into this tensor."""
        if isinstance(src, Tensor):
            src = src.array if src._be is self._be else src.numpy()
        return self._assign("copy_", self._be.asarray(src, dtype=self.dtype))

    def uniform_(self, from_: float = 0.0, to: float = 1.0) -> Tensor:
        """Fill with values drawn from U(from_, to), in place."""
        return self._assign(
            "uniform_", self._be.rand(self.shape, self.dtype) * (to - from_) + from_
        )

    def normal_(self, mean: float = 0.0, std: float = 1.0) -> Tensor:
        """Fill with values drawn from N(mean, std^2), in place."""
        return self._assign("normal_", self._be.randn(self.shape, self.dtype) * std + mean)

    def __setitem__(self, index: Any, value: Any) -> None:
        value = value.array if isinstance(value, Tensor) else value
        self._assign("__setitem__", value, _raw_index(index))

    def __pos__(self) -> Tensor:
        return self

    def __iter__(self) -> Any:
        return (self[i] for i in range(len(self)))  # len() refuses a 0-d tensor at once

    def any(self) -> Tensor:
        return Tensor._make(self._be.xp.asarray(self.array.any()), self._be, False)

    def all(self) -> Tensor:
        return Tensor._make(self._be.xp.asarray(self.array.all()), self._be, False)

    def is_floating_point(self) -> bool:
        """True when the dtype is floating, bfloat16 too (also torch.is_floating_point(x))."""
        return is_floating(self.dtype)

    nelement = numel

    def element_size(self) -> int:
        return self.dtype.itemsize

    if TYPE_CHECKING:  # set by gnn/ops/registry.py, where mypy cannot see them: Any to it

        def __getattr__(self, name: str) -> Any: ...
        def _op(self, *args: Any) -> Any: ...

        __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _op
        __truediv__ = __rtruediv__ = __pow__ = __rpow__ = __matmul__ = __rmatmul__ = _op
        __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _op
        __neg__ = __abs__ = __getitem__ = _op

    # ---- new tensors like this one (same dtype and device unless given) ------------------------

    def new_tensor(
        self, data: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False
    ) -> Tensor:
        """A copy of `data` as a tensor with this tensor's dtype and device by default."""
        from gnn import creation  # the same layer; it imports this module first

        return creation.tensor(data, dtype or self.dtype, device or self.device, requires_grad)

    def new_full(
        self,
        size: Any,
        fill_value: Any,
        dtype: Any = None,
        device: Any = None,
        requires_grad: bool = False,
    ) -> Tensor:
        """A tensor of `size` filled with fill_value, this tensor's dtype and device by default."""
        from gnn import creation  # the same layer; it imports this module first

        dtype = self.dtype if dtype is None else dtype
        return creation.full(size, fill_value, dtype, device or self.device, requires_grad)

    def new_zeros(
        self, *size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False
    ) -> Tensor:
        """Zeros of `size`, this tensor's dtype and device by default (also `new_empty`)."""
        return self.new_full(shape_args(size), 0, dtype, device, requires_grad)

    new_empty = new_zeros  # "to be overwritten": zeros serve

    def new_ones(
        self, *size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False
    ) -> Tensor:
        """Ones of `size`, this tensor's dtype and device by default."""
        return self.new_full(shape_args(size), 1, dtype, device, requires_grad)

    def __format__(self, spec: str) -> str:
        """f"{loss:.4f}" formats a one-element tensor as its number, as PyTorch does."""
        if spec and self.array.size != 1:
            raise TypeError(
                f"format spec {spec!r} needs a one-element tensor, got shape {self.shape}; "
                "format t.item() or t.tolist()"
            )
        return format(self.item(), spec) if spec or self.ndim == 0 else str(self)


# The class of what ops and autograd make from a tensor (results, gradients): plain Tensor, for a
# Parameter too. Autograd, the layer below, reads it here rather than importing this module.
Tensor._plain = Tensor


def is_tensor(obj: Any) -> bool:
    """True for gnn Tensors (and Parameters): torch.is_tensor."""
    return isinstance(obj, Tensor)


# torch.numel(x) and torch.is_floating_point(x): the methods, called as functions
numel = Tensor.numel
is_floating_point = Tensor.is_floating_point


def to_arguments(device: Any, dtype: Any, who: str) -> tuple[Any, Any]:
    """(device, dtype) from the ways `.to()` is called (Tensor.to and Module.to share it).

    `to("cuda")`, `to(gnn.float64)`, `to("float64")`, `to("cpu", "float32")`, `to(tensor)`
    (its device and dtype); a string that is neither a device nor a dtype is a ValueError.
    """
    if isinstance(device, Tensor):
        return device.device, device.dtype if dtype is None else dtype
    if device is not None and not isinstance(device, (str, Device)):
        return None, device  # to(gnn.float64)
    if isinstance(device, str) and dtype is None:
        try:
            parse_device(device)
        except ValueError:
            try:
                parse_dtype(device)
            except (TypeError, ValueError):
                raise ValueError(
                    f"{who}: {device!r} is neither a device ('cpu', 'cuda', 'cuda:N') "
                    "nor a dtype ('float32', 'float64', ...)"
                ) from None
            return None, device  # to("float64")
    return device, dtype


def shape_args(args: tuple) -> tuple:
    """Accept both t.reshape(2, 3) and t.reshape((2, 3))."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return tuple(args[0])
    return tuple(args)


def _raw_index(index: Any) -> Any:
    """An index with Tensors replaced by their arrays."""
    if isinstance(index, Tensor):
        return index.array
    if isinstance(index, tuple):
        return tuple(i.array if isinstance(i, Tensor) else i for i in index)
    return index


def _to_array(data: Any, dtype: Any, device: Any) -> tuple[Any, Any]:
    """(array, backend) for tensor(data, dtype, device): the dtype rules of torch.tensor."""
    if isinstance(data, Tensor):
        be = data._be if device is None else get_backend(device)
        arr = data.array if be is data._be else be.asarray(data.numpy())
        dt = arr.dtype if dtype is None else parse_dtype(dtype)
        return (arr.copy() if arr.dtype == dt else be.asarray(arr, dtype=dt)), be
    if data is None or isinstance(data, (dict, set, frozenset)):
        # np.asarray(None, float32) is NaN, and a dict is an object array: refuse both
        raise TypeError(
            f"tensor(): cannot make a tensor from {type(data).__name__}; pass numbers, "
            "(nested) lists of numbers, or a NumPy/CuPy array"
        )
    be = get_backend(device)
    if not isinstance(data, np.ndarray) and hasattr(data, "get") and be.name == "cpu":
        data = data.get()  # a CuPy array handed to a CPU tensor
    # Arrays (and NumPy scalars other than float64) keep their dtype; Python data is probed.
    is_array = hasattr(data, "dtype") and not isinstance(data, (float, int, bool))
    try:
        probe = np.dtype(data.dtype) if is_array else np.asarray(data).dtype
    except ValueError as exc:  # e.g. nested lists of different lengths
        raise ValueError(
            f"tensor(): cannot make a tensor from {type(data).__name__}: {exc}"
        ) from None
    if probe.kind == "O" and any(v is None for v in np.asarray(data).ravel()):
        # a float dtype would turn None into NaN silently (a list of Tensors is fine)
        raise TypeError(
            "tensor(): the data holds None; fill missing values explicitly (e.g. float('nan') "
            "or 0) before making a tensor"
        )
    if dtype is not None or is_array or probe.kind not in "iufO":
        # arrays keep their dtype, bools too; parse_dtype refuses objects, complex, strings, dates
        dt = parse_dtype(probe if dtype is None else dtype, "tensor(): ")
    else:  # Python ints are int64; floats (and objects such as a list of Tensors) the default
        dt = np.dtype("int64") if probe.kind in "iu" else config.get_default_dtype()
    if be.is_array(data) and data.dtype == dt:
        return data, be
    try:
        return be.asarray(data, dtype=dt), be
    except (ValueError, TypeError) as exc:
        raise TypeError(
            f"tensor(): cannot make a tensor from {type(data).__name__}: {exc}"
        ) from None
