"""Shape ops (reshape, permute, expand, indexing, cat, stack).

Also the moves between devices and dtypes.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from gnn.backend import get_backend, parse_device
from gnn.dtypes import is_floating, parse_dtype
from gnn.ops._util import Configured, norm_dim
from gnn.ops.elementwise import clone
from gnn.ops.registry import register
from gnn.tensor import Tensor, _raw_index, to_arguments


class Reshape(Configured):
    shape: tuple

    def forward(self, x: Any) -> Any:
        self.in_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, gy: Any) -> Any:
        return gy.reshape(self.in_shape)


def _reshape_as(x: Tensor, other: Tensor) -> Tensor:
    return reshape(x, other.shape)


@register(
    method=True, sizes=True, tensor={"reshape_as": _reshape_as, "view_as": _reshape_as}, top=True
)
def reshape(x: Tensor, shape: Any) -> Tensor:
    """The same elements in a new shape (one dimension may be -1)."""
    shape = tuple(int(s) for s in ((shape,) if isinstance(shape, int) else shape))
    if shape.count(-1) > 1:
        raise ValueError(f"reshape: only one dimension can be -1, got {shape}")
    numel, known = x.array.size, math.prod(s for s in shape if s != -1)
    if -1 in shape and known and numel % known == 0:
        shape = tuple(numel // known if s == -1 else s for s in shape)
    if -1 in shape or math.prod(shape) != numel:
        raise ValueError(
            f"reshape: shape {shape} is invalid for input of shape {x.shape} ({numel} elements)"
        )
    if shape == x.shape:
        return x
    return Reshape.apply(x, shape=shape)


view = register(name="view", method=True, sizes=True)(reshape)  # F.view, Tensor.view: no torch.view


class Permute(Configured):
    dims: tuple  # out.shape[i] == x.shape[dims[i]]

    def forward(self, x: Any) -> Any:
        return x.transpose(self.dims)

    def backward(self, gy: Any) -> Any:  # the inverse permutation: dim d goes back to i
        return gy.transpose(sorted(range(len(self.dims)), key=self.dims.__getitem__))


def _reversed_dims(x: Tensor) -> Tensor:
    """x.T: all dims in reverse order."""
    return permute(x, tuple(range(x.ndim - 1, -1, -1)))


@register(method=True, sizes=True, tensor={"T": property(_reversed_dims)}, top=True)
def permute(x: Tensor, dims: Any) -> Tensor:
    """Reorder the dimensions: out.shape[i] == x.shape[dims[i]]."""
    dims = tuple(norm_dim(d, x.ndim, "permute") for d in dims)
    if sorted(dims) != list(range(x.ndim)):
        raise ValueError(f"permute: dims {dims} are not a permutation of {x.ndim} dims")
    return Permute.apply(x, dims=dims)


@register(method=True, aliases=("swapdims",), top=True)
def transpose(x: Tensor, dim0: int, dim1: int) -> Tensor:
    """Swap two dimensions."""
    d0, d1 = norm_dim(dim0, x.ndim, "transpose"), norm_dim(dim1, x.ndim, "transpose")
    dims = list(range(x.ndim))
    dims[d0], dims[d1] = dims[d1], dims[d0]
    return Permute.apply(x, dims=tuple(dims))


class Expand(Configured):
    shape: tuple

    def forward(self, x: Any) -> Any:
        return self.be.xp.broadcast_to(x, self.shape)

    def backward(self, gy: Any) -> Any:
        return gy  # the engine sums it back to the input's shape


def _expand_as(x: Tensor, other: Tensor) -> Tensor:
    return expand(x, other.shape)


@register(method=True, sizes=True, tensor={"expand_as": _expand_as})
def expand(x: Tensor, shape: Any) -> Tensor:
    """Broadcast x to `shape` without copying (-1 keeps a dimension)."""
    shape = tuple(shape)
    lead = len(shape) - x.ndim
    if lead < 0:
        raise ValueError(f"expand: cannot expand shape {x.shape} to fewer dims {shape}")
    full = tuple(x.shape[i - lead] if s == -1 and i >= lead else s for i, s in enumerate(shape))
    for i, n in enumerate(x.shape):
        if n != 1 and n != full[i + lead]:
            raise ValueError(f"expand: cannot expand shape {x.shape} to {shape}")
    return Expand.apply(x, shape=full)


@register(method=True, top=True)
def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge dimensions start_dim..end_dim into one."""
    s, e = norm_dim(start_dim, x.ndim, "flatten"), norm_dim(end_dim, x.ndim, "flatten")
    if s > e:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    return reshape(x, x.shape[:s] + (math.prod(x.shape[s : e + 1]),) + x.shape[e + 1 :])


@register(method=True, top=True)
def unsqueeze(x: Tensor, dim: int) -> Tensor:
    """Insert a dimension of size 1 at `dim`."""
    d = norm_dim(dim, x.ndim + 1, "unsqueeze")
    return reshape(x, x.shape[:d] + (1,) + x.shape[d:])


@register(method=True, top=True)
def squeeze(x: Tensor, dim: int | None = None) -> Tensor:
    """Remove dimensions of size 1 (only `dim` when given, and only if it has size 1)."""
    if dim is None:
        return reshape(x, tuple(s for s in x.shape if s != 1))
    d = norm_dim(dim, x.ndim, "squeeze")
    if x.shape[d : d + 1] != (1,):  # not of size 1 (a 0-d x has no dim d: it stays as it is)
        return x
    return reshape(x, x.shape[:d] + x.shape[d + 1 :])


# ---- indexing ------------------------------------------------------------------------------------


class GetItem(Configured):
    index: Any  # as NumPy takes it, Tensors and lists made arrays
    advanced: bool  # it holds an array: positions may repeat

    def forward(self, x: Any) -> Any:
        self.in_shape = x.shape
        return x[self.index]

    def backward(self, gy: Any) -> Any:
        gx = self.be.xp.zeros(self.in_shape, dtype=gy.dtype)
        if self.advanced:
            self.be.index_add(gx, self.index, gy)  # repeated indices accumulate
        else:
            gx[self.index] = gy
        return gx


def _is_advanced(index: Any) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(not isinstance(p, (int, slice, type(None), type(Ellipsis))) for p in parts)


@register(operators=("__getitem__",))
def getitem(x: Tensor, index: Any) -> Tensor:
    """x[index]: ints, slices, None, Ellipsis, bool masks and integer arrays (as NumPy)."""
    raw = _raw_index(index)
    if isinstance(raw, list):
        raw = x._be.asarray(raw)
    elif isinstance(raw, tuple):
        raw = tuple(x._be.asarray(p) if isinstance(p, list) else p for p in raw)
    try:
        return GetItem.apply(x, index=raw, advanced=_is_advanced(raw))
    except IndexError as exc:
        raise IndexError(
            f"index {index!r} is invalid for a tensor of shape {x.shape}: {exc}"
        ) from None


# ---- joining -------------------------------------------------------------------------------------


class AlongAxis(Configured):
    """A Function along one axis of its inputs (cat, stack; softmax, log_softmax, cumsum)."""

    axis: int


class Cat(AlongAxis):
    def forward(self, *xs: Any) -> Any:
        self.sizes = [x.shape[self.axis] for x in xs]
        return self.be.xp.concatenate(xs, axis=self.axis)

    def backward(self, gy: Any) -> Any:  # each input's slice of gy, from where it starts
        lead = (slice(None),) * self.axis
        parts = zip(itertools.accumulate(self.sizes, initial=0), self.sizes, self.needs_input_grad)
        return tuple(gy[lead + (slice(s, s + n),)] if need else None for s, n, need in parts)


def _check_join(op: str, tensors: Any, dim: int, new: bool) -> tuple[list, int]:
    """The tensors as a list, checked, and dim as an axis of the result: one of theirs (cat) or
    a new one (stack, new=True). Stack's tensors match in shape, cat's in all dims but that one."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError(f"{op}: expected a non-empty sequence of tensors")
    for t in tensors:
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: expected Tensors, got {type(t).__name__}")
    d, ref = norm_dim(dim, tensors[0].ndim + new, op), tensors[0].shape
    for t in tensors[1:]:  # cat's shapes may differ in dim d
        if t.shape != ref and (
            new or t.ndim != len(ref) or t.shape[:d] + t.shape[d + 1 :] != ref[:d] + ref[d + 1 :]
        ):
            shapes = ", ".join(str(t.shape) for t in tensors)
            where = "" if new else f" except in dim {d}"
            raise ValueError(f"{op}: shapes must match{where}, got {shapes}")
    return tensors, d


@register(aliases=("concat",), top=True)
def cat(tensors: Any, dim: int = 0) -> Tensor:
    """Join tensors along an existing dimension."""
    tensors, d = _check_join("cat", tensors, dim, new=False)
    return Cat.apply(*tensors, axis=d)


@register(top=True)
def concatenate(tensors: Any, axis: int = 0) -> Tensor:
    """Join tensors along an existing axis (torch.concatenate)."""
    return cat(tensors, axis)


class Stack(AlongAxis):
    def forward(self, *xs: Any) -> Any:
        return self.be.xp.stack(xs, axis=self.axis)

    def backward(self, gy: Any) -> Any:
        return tuple(
            gy.take(i, axis=self.axis) if need else None
            for i, need in enumerate(self.needs_input_grad)
        )


@register(top=True)
def stack(tensors: Any, dim: int = 0) -> Tensor:
    """Join tensors of one shape along a new dimension."""
    tensors, d = _check_join("stack", tensors, dim, new=True)
    return Stack.apply(*tensors, axis=d)


@register(method=True, top=True)
def swapaxes(x: Tensor, axis0: int, axis1: int) -> Tensor:
    """x with two axes exchanged (torch.swapaxes)."""
    return transpose(x, axis0, axis1)


# ---- device and dtype moves ----------------------------------------------------------------------


class ToDevice(Configured):
    target: Any  # the backend of the device moved to

    def forward(self, x: Any) -> Any:
        return self.target.asarray(self.be.to_numpy(x) if self.be.name != "cpu" else x)

    def backward(self, gy: Any) -> Any:
        return self.be.asarray(self.target.to_numpy(gy) if self.target.name != "cpu" else gy)


class Cast(Configured):
    dtype: Any

    def forward(self, x: Any) -> Any:
        self.in_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, gy: Any) -> Any:
        return gy.astype(self.in_dtype)


def to(
    x: Tensor, device: Any = None, dtype: Any = None, non_blocking: bool = False, copy: bool = False
) -> Tensor:
    """x on another device and/or with another dtype (x itself when nothing changes, unless
    copy=True): Tensor.to.

    `t.to("cuda")`, `t.to(gnn.float64)`, `t.to("cpu", "float32")` and `t.to(other_tensor)` work.
    non_blocking is accepted for PyTorch's scripts; copies here are ordered on the device's
    stream either way.
    """
    device, dtype = to_arguments(device, dtype, "to()")
    out = x
    if device is not None and parse_device(device) != x.device:
        out = to_device(out, device)
    if dtype is not None and parse_dtype(dtype) != out.dtype:
        out = cast(out, dtype)
    if copy and out is x:
        out = clone(x)
    return out


def cuda(x: Tensor, device: Any = None, non_blocking: bool = False) -> Tensor:
    """x on a GPU: `device` is an index, "cuda:N" or a device (default: GPU 0)."""
    if device is None:
        device = 0
    if isinstance(device, int) and not isinstance(device, bool):
        device = f"cuda:{device}"
    if parse_device(device).type != "cuda":
        raise ValueError(f"cuda(): expected a CUDA device, got {device!r}")
    return to(x, device)


# Tensor's dtype methods (bfloat16: ml_dtypes, CPU only, as CuPy has no bfloat16 arrays)
_CASTS = {
    "float": "float32", "double": "float64", "half": "float16", "bfloat16": "bfloat16",
    "long": "int64", "int": "int32", "bool": "bool",
}  # fmt: skip


def _cast_to(name: str, dtype: str) -> Any:
    def method(x: Tensor) -> Tensor:
        return to(x, dtype=dtype)

    method.__name__, method.__doc__ = name, f"This tensor as {dtype}."
    return method


@register(tensor={"to": to, "cpu": lambda x: to(x, "cpu"), "cuda": cuda})
def to_device(x: Tensor, device: Any) -> Tensor:
    """A copy of x on another device; gradients flow back to the original device."""
    target = get_backend(device)
    out = ToDevice.apply(x, target=target)
    out._be = target  # the output lives on the target backend
    return out


@register(
    tensor={
        **{name: _cast_to(name, dtype) for name, dtype in _CASTS.items()},
        "type": lambda x, dtype: to(x, dtype=dtype),
        "type_as": lambda x, other: to(x, dtype=other.dtype),
    }
)
def cast(x: Tensor, dtype: Any) -> Tensor:
    """x converted to another dtype (differentiable between floating dtypes)."""
    dt = parse_dtype(dtype)
    if dt.name == "bfloat16" and x._be.name == "cuda":
        raise TypeError(
            "bfloat16 tensors exist only on the CPU in gnn (CuPy has no bfloat16 arrays); "
            "use float16 on CUDA (gnn.autocast('cuda') does)"
        )
    if not is_floating(dt) and x.requires_grad:
        return Tensor._make(x.array.astype(dt), x._be, False)
    return Cast.apply(x, dtype=dt)
