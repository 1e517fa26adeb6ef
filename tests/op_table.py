"""The op table: one row per core op of gnn.functional, and the NumPy reference it is held to.

tests/test_ops.py generates its tests from these rows: the forward against the reference (float32
and float64, on every device), the float64 gradient against central differences, and the
gradients on each device and in float32 against the CPU's float64 ones. Adding an op is adding a
row here.

A row names the op (`op`, its name in the registry, gnn/ops/registry.py; looked up in
gnn.functional unless `fn` is given), its NumPy reference,
the Tensor method or operator PyTorch has for it, the input domain, and its cases. A case lists
the inputs: a shape for each Tensor input (random values from the row's domain), or a Python
number; then the other arguments, passed to the op and to the reference alike. NumPy arrays among
those arguments become gnn tensors on the test's device (floating ones in the test's dtype).
"""

from __future__ import annotations

import math
import operator
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import gnn.functional as F
from gnn.tensor import Tensor

# ---- input domains: rng, shape -> float64 array ------------------------------------------------

Domain = Callable[[np.random.Generator, tuple], np.ndarray]


def normal(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    return rng.standard_normal(shape)


def positive(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    """For log, sqrt, pow bases: well inside (0, inf)."""
    return rng.uniform(0.5, 2.0, shape)


def probability(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    """For binary_cross_entropy inputs: inside (0, 1), away from both ends."""
    return rng.uniform(0.05, 0.95, shape)


def unit_interval(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    """For targets: anywhere in [0, 1]."""
    return rng.uniform(0.0, 1.0, shape)


def small_integers(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    """Floats that tie often, for the comparisons."""
    return rng.integers(-2, 3, shape).astype(np.float64)


def distinct(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    """No two values within 0.09 of each other: max/min have no ties for the gradient to split."""
    n = math.prod(shape)
    values = (rng.permutation(n) - n / 2) * 0.1 + rng.uniform(0.0, 0.01, n)
    return values.reshape(shape)


def away_from(*points: float, gap: float = 0.1) -> Domain:
    """Normal values, none within `gap` of a kink (abs and relu at 0, clamp at its bounds)."""

    def sample(rng: np.random.Generator, shape: tuple) -> np.ndarray:
        x = rng.standard_normal(shape)
        for _ in range(100):
            near = np.zeros(shape, dtype=bool)
            for p in points:
                near |= np.abs(x - p) < gap
            if not near.any():
                return x
            x[near] = rng.standard_normal(int(near.sum()))
        raise RuntimeError(f"away_from{points}: could not sample {shape}")

    return sample


nonzero = away_from(0.0)
nonzero_wide = away_from(0.0, gap=0.5)  # for divisors: 1/b stays below 2

# ---- constant arguments: masks, labels (fixed arrays, the same in every run) -------------------


def _fixed_rng(*key: Any) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def mask(shape: tuple, p: float = 0.5) -> np.ndarray:
    """A fixed boolean array, True with probability p."""
    return _fixed_rng("mask", shape, p).random(shape) < p


def labels(shape: tuple, num_classes: int, ignore: int | None = None) -> np.ndarray:
    """Fixed class labels in [0, num_classes); with `ignore`, a few of them set to it."""
    rng = _fixed_rng("labels", shape, num_classes, ignore)
    out = rng.integers(0, num_classes, shape)
    if ignore is not None and out.size:
        out.reshape(-1)[::2] = ignore  # every other one, from the first
    return out


def weights(shape: tuple) -> np.ndarray:
    """Fixed positive floats (class weights, pos_weight, per-element weights)."""
    return _fixed_rng("weights", shape).uniform(0.5, 2.0, shape)


def probs(shape: tuple, dim: int = 1) -> np.ndarray:
    """Fixed probability vectors along `dim` (soft targets)."""
    e = np.exp(_fixed_rng("probs", shape).standard_normal(shape))
    return e / e.sum(axis=dim, keepdims=True)


# ---- rows ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KnownBug:
    """A gnn bug that a case exposes, in code outside gnn/ops/ (not fixed from here).

    The case's tests are marked xfail(strict=True) on `devices`: once the bug is fixed they
    XPASS and fail, and the `bug=` comes off the case.
    """

    reason: str
    forward: bool = True  # False: the forward is right, only the gradient tests fail
    devices: tuple = ("cpu",)


@dataclass(frozen=True, eq=False)  # eq=False: kwargs hold arrays, which do not compare to a bool
class Case:
    """The inputs of one call: Tensor shapes (or Python numbers), then the other arguments."""

    inputs: tuple
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    bug: KnownBug | None = None

    def tensor_shapes(self) -> list[tuple]:
        return [s for s in self.inputs if isinstance(s, tuple)]

    @property
    def is_empty(self) -> bool:
        """Some Tensor input has a zero-size dim."""
        return any(0 in s for s in self.tensor_shapes())

    @property
    def is_one_element(self) -> bool:
        """Every Tensor input holds exactly one element."""
        return all(math.prod(s) == 1 for s in self.tensor_shapes())

    @property
    def broadcasts(self) -> bool:
        """Operands of different shapes (masks and conditions count), or a Python number."""
        masks = [v.shape for v in self.kwargs.values() if isinstance(v, np.ndarray)]
        shapes = self.tensor_shapes() + masks
        return len(set(shapes)) > 1 or len(shapes) < len(self.inputs) + len(masks)

    @property
    def id(self) -> str:
        parts = [_short(s) for s in self.inputs] + [_short(a) for a in self.args]
        parts += [f"{k}={_short(v)}" for k, v in self.kwargs.items()]
        return ",".join(parts)


def case(*inputs: Any, args: tuple = (), bug: KnownBug | None = None, **kwargs: Any) -> Case:
    return Case(tuple(inputs), tuple(args), kwargs, bug)


def _short(v: Any) -> str:
    if isinstance(v, tuple) and all(isinstance(i, int) for i in v):
        return "(" + "x".join(map(str, v)) + ")" if v else "()"
    if isinstance(v, tuple):
        return "[" + ";".join(_short(i) for i in v) + "]"
    if isinstance(v, np.ndarray):
        if v.dtype.kind == "f":
            return f"f{_short(v.shape)}"
        if v.dtype.kind == "b":
            return f"mask{_short(v.shape)}:{int(v.sum())}"
        return "i" + str(v.tolist()).replace(" ", "")
    if isinstance(v, slice):
        return ":".join("" if p is None else str(p) for p in (v.start, v.stop, v.step))
    if v is Ellipsis:
        return "..."
    return repr(v).replace(" ", "")


@dataclass(frozen=True)
class OpRow:
    op: str  # the name in gnn.functional this row covers
    ref: Callable  # the NumPy reference, on float64 arrays, same arguments as the op
    cases: list
    name: str = ""  # the test id; defaults to op (two rows of one op need different names)
    fn: Callable | None = None  # how to call the op, when not as getattr(F, op)(*inputs, ...)
    method: Callable | None = None  # the Tensor method or operator, where PyTorch has one
    domain: Domain | tuple = normal  # one for all inputs, or one per input position
    differentiable: bool = True
    out_dtype: str | None = None  # the output's dtype, where it is not the input's
    tol32: tuple = (2e-5, 2e-6)  # (rtol, atol) for float32 outputs and gradients
    tol64: tuple = (1e-10, 1e-12)  # (rtol, atol) for float64 outputs

    @property
    def id(self) -> str:
        return self.name or self.op

    @property
    def call(self) -> Callable:
        return self.fn if self.fn is not None else getattr(F, self.op)

    def domain_of(self, position: int) -> Domain:
        return self.domain[position] if isinstance(self.domain, tuple) else self.domain


# ---- helpers for rows ---------------------------------------------------------------------------


def values(extreme: Callable) -> Callable:
    """F.max / F.min returning the values alone (with dim they return (values, indices))."""

    def call(x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        out = extreme(x, *args, **kwargs)
        return out.values if isinstance(out, tuple) else out

    return call


def indices(extreme: Callable) -> Callable:
    def call(x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        return extreme(x, *args, **kwargs).indices

    return call


def axis(dim: Any, ndim: int) -> Any:
    """A PyTorch dim as a NumPy axis; a 0-d tensor accepts dim 0 and -1 and has no axis."""
    if ndim == 0:
        return None
    return dim


def np_reduce(reduce: Callable) -> Callable:
    def ref(x: np.ndarray, dim: Any = None, keepdim: bool = False) -> np.ndarray:
        return reduce(x, axis=axis(dim, x.ndim), keepdims=keepdim)

    return ref


def np_var(x: np.ndarray, dim: Any = None, keepdim: bool = False, unbiased: bool = True):
    return np.var(x, axis=axis(dim, x.ndim), keepdims=keepdim, ddof=1 if unbiased else 0)


def np_std(x: np.ndarray, dim: Any = None, keepdim: bool = False, unbiased: bool = True):
    return np.sqrt(np_var(x, dim, keepdim, unbiased))


def np_sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def np_bias_gelu(x: np.ndarray, bias: np.ndarray, approximate: str = "none") -> np.ndarray:
    return np_gelu(x + bias, approximate)


def np_gelu(x: np.ndarray, approximate: str = "none") -> np.ndarray:
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return x * 0.5 * (1 + erf(x / math.sqrt(2)))


def np_softmax(x: np.ndarray, dim: int = -1) -> np.ndarray:
    if x.ndim == 0:
        return np.ones_like(x)
    e = np.exp(x - (x.max(axis=dim, keepdims=True) if x.size else 0))
    return e / e.sum(axis=dim, keepdims=True)


def np_log_softmax(x: np.ndarray, dim: int = -1) -> np.ndarray:
    return np.log(np_softmax(x, dim))


def np_clamp(x: np.ndarray, min: Any = None, max: Any = None) -> np.ndarray:
    lo = -np.inf if min is None else min
    hi = np.inf if max is None else max
    return np.minimum(np.maximum(x, lo), hi)


def np_leaky_relu(x: np.ndarray, negative_slope: float = 0.01) -> np.ndarray:
    return np.where(x > 0, x, negative_slope * x)


def np_squeeze(x: np.ndarray, dim: int | None = None) -> np.ndarray:
    if dim is None:
        return np.squeeze(x)
    return np.squeeze(x, axis=dim) if x.shape[dim] == 1 else x


def np_expand(x: np.ndarray, shape: tuple) -> np.ndarray:
    lead = len(shape) - x.ndim
    full = tuple(x.shape[i - lead] if s == -1 else s for i, s in enumerate(shape))
    return np.broadcast_to(x, full)


def np_flatten(x: np.ndarray, start_dim: int = 0, end_dim: int = -1) -> np.ndarray:
    if x.ndim == 0:
        return x.reshape(1)
    s, e = start_dim % x.ndim, end_dim % x.ndim
    return x.reshape(x.shape[:s] + (math.prod(x.shape[s : e + 1]),) + x.shape[e + 1 :])


def np_linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    y = x @ w.T
    return y if b is None else y + b


def _reduce_loss(loss: np.ndarray, reduction: str) -> np.ndarray:
    if reduction == "mean":
        return np.mean(loss)
    if reduction == "sum":
        return np.sum(loss)
    return loss


def np_mse_loss(x: np.ndarray, t: np.ndarray, reduction: str = "mean") -> np.ndarray:
    return _reduce_loss((x - t) ** 2, reduction)


def np_l1_loss(x: np.ndarray, t: np.ndarray, reduction: str = "mean") -> np.ndarray:
    return _reduce_loss(np.abs(x - t), reduction)


def np_bce(p: np.ndarray, t: np.ndarray, weight: Any = None, reduction: str = "mean"):
    loss = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    return _reduce_loss(loss if weight is None else loss * weight, reduction)


def np_bce_with_logits(
    x: np.ndarray, t: np.ndarray, weight: Any = None, reduction: str = "mean", pos_weight=None
):
    # PyTorch's documented form: -w [pw t log(sigmoid(x)) + (1 - t) log(1 - sigmoid(x))]
    pw = 1.0 if pos_weight is None else pos_weight
    s = np_sigmoid(x)
    loss = -(pw * t * np.log(s) + (1 - t) * np.log(1 - s))
    return _reduce_loss(loss if weight is None else loss * weight, reduction)


def np_cross_entropy(
    x: np.ndarray,
    target: np.ndarray,
    weight: Any = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> np.ndarray:
    """PyTorch's cross_entropy written out: class dim 1 (0 for a single sample)."""
    dim = 1 if x.ndim > 1 else 0
    c = x.shape[dim]
    logp = np.moveaxis(np_log_softmax(x, dim), dim, -1)  # (..., C)
    w = np.ones(c) if weight is None else weight
    eps = label_smoothing
    if target.dtype.kind == "f":  # class probabilities, of input's shape
        q = np.moveaxis(target, dim, -1) * (1 - eps) + eps / c
        loss = -(logp * q * w).sum(axis=-1)
        return _reduce_loss(loss, reduction)
    valid = target != ignore_index
    safe = np.where(valid, target, 0)
    picked = np.take_along_axis(logp, safe[..., None], axis=-1)[..., 0]
    w_t = np.where(valid, w[safe], 0.0)
    loss = (1 - eps) * w_t * -picked + eps / c * np.where(valid, -(logp * w).sum(axis=-1), 0.0)
    if reduction == "mean":
        return loss.sum() / w_t.sum()
    return _reduce_loss(loss, reduction)


def np_nll_loss(
    x: np.ndarray,
    target: np.ndarray,
    weight: Any = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> np.ndarray:
    valid = target != ignore_index
    safe = np.where(valid, target, 0)
    w = np.ones(x.shape[1]) if weight is None else weight
    w_t = np.where(valid, w[safe], 0.0)
    loss = -x[np.arange(len(target)), safe] * w_t
    if reduction == "mean":
        return loss.sum() / w_t.sum()
    return _reduce_loss(loss, reduction)


# ---- shared case lists --------------------------------------------------------------------------

UNARY = [
    case((3, 4)),
    case((2, 3, 4)),
    case((5,)),
    case(()),
    case((1,)),
    case((1, 1)),
    case((0,)),
    case((2, 0, 3)),
]

BINARY = [
    case((3, 4), (3, 4)),
    case((3, 4), (4,)),
    case((4,), (3, 4)),
    case((2, 1, 4), (3, 1)),
    case((3, 1), (1, 4)),
    case((3, 4), ()),
    case((), (3, 4)),
    case((3, 4), 1.5),  # a Python float takes the tensor's dtype
    case(-0.75, (3, 4)),  # reflected: float op tensor
    case((3, 4), 2),  # a Python int
    case((), ()),
    case((1,), (1, 1)),
    case((0, 4), (4,)),
    case((2, 0, 3), (1, 3)),
    case((3, 1), (3, 0)),
]

REDUCE = [  # sum, mean: dim None, int, negative, tuple, keepdim
    case((3, 4)),
    case((3, 4), dim=1),
    case((3, 4), dim=-1, keepdim=True),
    case((2, 3, 4), dim=0),
    case((2, 3, 4), dim=(0, 2)),
    case((2, 3, 4), dim=(-1, 0), keepdim=True),
    case((3, 4), dim=None, keepdim=True),
    case(()),
    case((), dim=0),
    case((1,)),
    case((1, 1), dim=0),
    case((0, 3), dim=1),
    case((0, 3), dim=0),
    case((0, 3)),
]

EXTREME = [  # max, min: no tuple dims in PyTorch
    case((3, 4)),
    case((3, 4), dim=1),
    case((3, 4), dim=-1, keepdim=True),
    case((2, 3, 4), dim=0),
    case((2, 3, 4), dim=-2, keepdim=True),
    case((5,), dim=0),
    case(()),
    case((1,)),
    case((1, 1), dim=0),
    case((), dim=0),
    case((0, 3), dim=1),  # reduces the non-empty dim: a (0,) result, as in PyTorch
]

VARIANCE = [
    case((3, 4)),
    case((3, 4), dim=1),
    case((3, 4), dim=0, unbiased=False),
    case((2, 3, 4), dim=(0, 2), keepdim=True),
    case((2, 3, 4), dim=-1),
    case((5,), dim=0, keepdim=True),
    case((1,), unbiased=False),
    case((1, 3), dim=1),
    case((0, 3), dim=1),
]

SOFTMAX = [
    case((3, 4)),
    case((3, 4), dim=0),
    case((2, 3, 4), dim=1),
    case((2, 3, 4), dim=-1),
    case((5,), dim=0),
    case((1,), dim=0),
    case((1, 1), dim=-1),
    case((), dim=0),
    case((0, 4), dim=-1),
    case((3, 0), dim=-1),
]

MATMUL = [
    case((3, 4), (4, 5)),
    case((2, 3, 4), (4, 5)),  # batched @ matrix
    case((3, 4), (2, 4, 5)),  # matrix @ batched
    case((2, 3, 4), (2, 4, 5)),
    case((2, 1, 3, 4), (5, 4, 2)),  # batch dims broadcast: (2, 1) with (5,)
    case((4,), (4, 5)),  # 1-D on the left
    case((3, 4), (4,)),  # 1-D on the right
    case((2, 3, 4), (4,)),
    case((4,), (2, 4, 5)),
    case((4,), (4,)),  # dot product: 0-d
    case((1, 1), (1, 1)),
    case((1,), (1,)),
    case((0, 4), (4, 5)),
    case((3, 0), (0, 5)),  # empty inner dim: zeros
    case((2, 0, 4), (4, 3)),
]

LINEAR = [
    case((5, 4), (3, 4), (3,)),
    case((5, 4), (3, 4)),
    case((2, 5, 4), (3, 4), (3,)),
    case((4,), (3, 4), (3,)),
    case((1, 1), (1, 1), (1,)),
    case((0, 4), (3, 4), (3,)),
]


def pointwise_loss_cases() -> list:
    return [
        case((3, 4), (3, 4)),
        case((3, 4), (3, 4), reduction="sum"),
        case((3, 4), (3, 4), reduction="none"),
        case((5,), (5,)),
        case((), ()),
        case((1,), (1,), reduction="sum"),
        case((0,), (0,)),
        case((0, 3), (0, 3), reduction="none"),
    ]


# ---- references for gnn/ops/unary.py, select.py and the newer reductions ----------------------


def with_specials(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    """Normal values with some NaN and +-inf among them (for isnan and isfinite)."""
    x = rng.standard_normal(shape)
    flat = x.reshape(-1)
    flat[::3] = np.nan
    flat[1::5] = np.inf
    flat[2::7] = -np.inf
    return x


def np_softplus(x: np.ndarray, beta: float = 1.0, threshold: float = 20.0) -> np.ndarray:
    return np.where(beta * x > threshold, x, np.log1p(np.exp(beta * x)) / beta)


def np_logsumexp(x: np.ndarray, dim: Any, keepdim: bool = False) -> np.ndarray:
    return np.log(np.sum(np.exp(x), axis=axis(dim, x.ndim), keepdims=keepdim))


def np_cumsum(x: np.ndarray, dim: int) -> np.ndarray:
    return np.cumsum(x, axis=dim) if x.ndim else x.copy()


def np_narrow(x: np.ndarray, dim: int, start: int, length: int) -> np.ndarray:
    return np.take(x, np.arange(start, start + length), axis=dim)


def np_split_pieces(x: np.ndarray, sizes: Any, dim: int = 0) -> list:
    n = x.shape[dim]
    if isinstance(sizes, int):
        sizes = [min(sizes, n - s) for s in range(0, n, sizes)] or [0]
    ends = np.cumsum(sizes)
    return [np_narrow(x, dim, int(e - k), int(k)) for e, k in zip(ends, sizes)]


def np_gather(x: np.ndarray, dim: int, index: np.ndarray) -> np.ndarray:
    dim %= max(x.ndim, 1)
    where = tuple(
        index if k == dim else np.arange(m).reshape((1,) * k + (m,) + (1,) * (index.ndim - k - 1))
        for k, m in enumerate(index.shape)
    )
    return x[where]


def np_sort(x: np.ndarray, dim: int = -1, descending: bool = False) -> tuple:
    if x.ndim == 0:
        return x.copy(), np.zeros((), dtype=np.int64)
    order = np.argsort(-x if descending else x, axis=dim, kind="stable")
    return np.take_along_axis(x, order, axis=dim), order


def np_topk(x: np.ndarray, k: int, dim: int = -1, largest: bool = True) -> tuple:
    values, order = np_sort(x, dim, descending=largest)
    if x.ndim == 0:
        return values, order
    return np_narrow(values, dim % x.ndim, 0, k), np_narrow(order, dim % x.ndim, 0, k)


TRIANGLE = [  # tril, triu
    case((3, 4)),
    case((4, 3), args=(1,)),
    case((2, 3, 3), args=(-1,)),
    case((1, 1)),
    case((0, 3)),
    case((2, 0, 2)),
]

SORT = [
    case((3, 4)),
    case((3, 4), args=(0,)),
    case((2, 3, 4), args=(1, True)),
    case((5,), descending=True),
    case(()),
    case((1,)),
    case((0, 3), args=(1,)),
]

TOPK = [
    case((3, 4), args=(2,)),
    case((3, 4), args=(3, 0)),
    case((2, 3, 4), args=(1, 1, False)),
    case((5,), args=(5,)),
    case((), args=(1,)),
    case((1,), args=(1,)),
    case((0, 3), args=(2, 1)),
    case((3, 2), args=(0,)),
]


def np_t(x: np.ndarray) -> np.ndarray:
    return x.T if x.ndim == 2 else x


# ---- the table ----------------------------------------------------------------------------------

ROWS: list[OpRow] = [
    # arithmetic (binary, broadcasting)
    OpRow("add", np.add, BINARY, method=operator.add),
    OpRow("sub", np.subtract, BINARY, method=operator.sub),
    OpRow("mul", np.multiply, BINARY, method=operator.mul),
    OpRow("div", np.divide, BINARY, method=operator.truediv, domain=(normal, nonzero_wide)),
    OpRow(
        "pow",
        np.power,
        [c for c in BINARY if not isinstance(c.inputs[1], int)] + [case(2.0, (3, 4))],
        method=operator.pow,
        domain=(positive, normal),
    ),
    OpRow(
        "pow",
        np.power,
        [
            case((3, 4), 3),
            case((3, 4), 2),
            case((3, 4), -2),
            case((3, 4), 0.5),
            case((3, 4), -1.5),
            case((2, 3), 1.0),
            case((), 2.5),
            case((1,), 2),
            case((0, 3), 2),
        ],
        name="pow_scalar",
        method=operator.pow,
        domain=positive,
    ),
    OpRow(
        "pow",
        np.power,
        [case((3, 4), 2), case((3, 4), 3), case((3, 4), -1), case((1,), 3), case((0,), 2)],
        name="pow_integer_negative_base",
        method=operator.pow,
        domain=nonzero,
    ),
    OpRow(
        "matmul", np.matmul, MATMUL, method=operator.matmul, tol32=(1e-5, 1e-5), tol64=(1e-9, 1e-12)
    ),
    # unary math
    OpRow("neg", np.negative, UNARY, method=operator.neg),
    OpRow("exp", np.exp, UNARY, method=Tensor.exp),
    OpRow("log", np.log, UNARY, method=Tensor.log, domain=positive),
    OpRow("sqrt", np.sqrt, UNARY, method=Tensor.sqrt, domain=positive),
    OpRow("abs", np.abs, UNARY, method=Tensor.abs, domain=nonzero),
    OpRow("clone", np.copy, UNARY, method=Tensor.clone),
    OpRow(
        "cast",
        lambda x, dtype: x.astype(dtype),
        [case(s, args=("float64",)) for s in [(3, 4), (), (1,), (0, 3)]],
        method=lambda x, dtype: x.to(dtype),
        out_dtype="float64",
    ),
    # activations
    OpRow("tanh", np.tanh, UNARY, method=Tensor.tanh),
    OpRow("sigmoid", np_sigmoid, UNARY, method=Tensor.sigmoid),
    OpRow("relu", lambda x: np.maximum(x, 0), UNARY, method=Tensor.relu, domain=nonzero),
    OpRow(
        "leaky_relu",
        np_leaky_relu,
        UNARY + [case((3, 4), negative_slope=0.2), case((5,), args=(0.5,))],
        domain=nonzero,
    ),
    OpRow(
        "gelu",
        np_gelu,
        UNARY + [case((3, 4), approximate="tanh"), case((0,), approximate="tanh")],
    ),
    OpRow(
        "bias_gelu",
        np_bias_gelu,
        [
            case((3, 4), (4,)),
            case((2, 3, 5), (5,), approximate="tanh"),
            case((1, 1), (1,)),
            case((0, 3), (3,), approximate="tanh"),
        ],
    ),
    OpRow("softmax", np_softmax, SOFTMAX, method=Tensor.softmax),
    OpRow("log_softmax", np_log_softmax, SOFTMAX, method=Tensor.log_softmax),
    # reductions
    OpRow("sum", np_reduce(np.sum), REDUCE, method=Tensor.sum),
    OpRow("mean", np_reduce(np.mean), REDUCE, method=Tensor.mean),
    OpRow(
        "max",
        np_reduce(np.max),
        EXTREME,
        fn=values(F.max),
        method=values(Tensor.max),
        domain=distinct,
    ),
    OpRow(
        "min",
        np_reduce(np.min),
        EXTREME,
        fn=values(F.min),
        method=values(Tensor.min),
        domain=distinct,
    ),
    OpRow(
        "max",
        lambda x, dim, keepdim=False: np.argmax(x, axis=axis(dim, x.ndim), keepdims=keepdim),
        [c for c in EXTREME if "dim" in c.kwargs],
        name="max_indices",
        fn=indices(F.max),
        method=indices(Tensor.max),
        domain=distinct,
        differentiable=False,
    ),
    OpRow(
        "min",
        lambda x, dim, keepdim=False: np.argmin(x, axis=axis(dim, x.ndim), keepdims=keepdim),
        [c for c in EXTREME if "dim" in c.kwargs],
        name="min_indices",
        fn=indices(F.min),
        method=indices(Tensor.min),
        domain=distinct,
        differentiable=False,
    ),
    OpRow("var", np_var, VARIANCE, method=Tensor.var, tol32=(5e-5, 5e-6)),
    OpRow("std", np_std, VARIANCE, method=Tensor.std, tol32=(5e-5, 5e-6)),
    # shape
    OpRow(
        "reshape",
        lambda x, shape: x.reshape(shape),
        [
            case((3, 4), args=((4, 3),)),
            case((3, 4), args=((-1,),)),
            case((2, 3, 4), args=((6, -1),)),
            case((2, 3, 4), args=((2, 3, 4),)),
            case((), args=((1, 1),)),
            case((1,), args=((),)),
            case((0, 3), args=((3, 0),)),
            case((0, 3), args=((-1,),)),
        ],
        method=lambda x, shape: x.reshape(*shape),  # the unpacked form x.reshape(4, 3)
    ),
    OpRow(
        "view",
        lambda x, shape: x.reshape(shape),
        [case((3, 4), args=((2, 6),)), case((2, 3, 4), args=((-1, 4),)), case((1,), args=((),))]
        + [case((0, 2), args=((2, 0, 1),))],
        method=Tensor.view,
    ),
    OpRow(
        "transpose",
        lambda x, d0, d1: np.swapaxes(x, d0, d1),
        [
            case((3, 4), args=(0, 1)),
            case((2, 3, 4), args=(-1, 0)),
            case((2, 3, 4), args=(1, 1)),
            case((1, 1), args=(0, 1)),
            case((0, 3), args=(1, 0)),
        ],
        method=Tensor.transpose,
    ),
    OpRow(
        "permute",
        lambda x, dims: np.transpose(x, dims),
        [
            case((2, 3, 4), args=((2, 0, 1),)),
            case((2, 3, 4), args=((-1, 0, 1),)),
            case((3, 4), args=((1, 0),)),
            case((1, 1, 1), args=((2, 1, 0),)),
            case((2, 0, 3), args=((2, 1, 0),)),
        ],
        method=lambda x, dims: x.permute(*dims),
    ),
    OpRow(
        "flatten",
        np_flatten,
        [
            case((2, 3, 4)),
            case((2, 3, 4), start_dim=1),
            case((2, 3, 4), end_dim=-2),
            case((2, 3, 4, 5), start_dim=1, end_dim=2),
            case(()),
            case((1, 1)),
            case((2, 0, 3), start_dim=1),
        ],
        method=Tensor.flatten,
    ),
    OpRow(
        "unsqueeze",
        lambda x, dim: np.expand_dims(x, dim),
        [
            case((3, 4), args=(0,)),
            case((3, 4), args=(1,)),
            case((3, 4), args=(-1,)),
            case((3, 4), args=(-3,)),
            case((), args=(0,)),
            case((1,), args=(-1,)),
            case((0, 3), args=(1,)),
        ],
        method=Tensor.unsqueeze,
    ),
    OpRow(
        "squeeze",
        np_squeeze,
        [
            case((3, 1, 4)),
            case((3, 1, 4), args=(1,)),
            case((3, 1, 4), args=(-2,)),
            case((3, 1, 4), args=(0,)),  # not of size 1: unchanged, as in PyTorch
            case((1, 1)),
            case((1,), args=(0,)),
            case((0, 1), args=(1,)),
            case((0, 1)),
        ],
        method=Tensor.squeeze,
    ),
    OpRow(
        "expand",
        np_expand,
        [
            case((3, 1), args=((3, 4),)),
            case((4,), args=((2, 3, 4),)),
            case((3, 1), args=((-1, 4),)),
            case((1, 3, 1), args=((2, -1, 2),)),
            case((), args=((2, 3),)),
            case((1,), args=((1,),)),
            case((3, 1), args=((3, 0),)),
            case((0, 1), args=((0, 4),)),
        ],
        method=lambda x, shape: x.expand(*shape),
    ),
    # indexing
    OpRow(
        "getitem",
        lambda x, index: x[index],
        [
            case((3, 4), args=(1,)),
            case((3, 4), args=(-1,)),
            case((3, 4), args=(slice(1, 3),)),
            case((3, 4), args=((slice(None), slice(None, None, 2)),)),
            case((3, 4), args=(slice(None, None, -1),)),  # negative steps
            case((3, 4), args=((slice(None), slice(3, 0, -2)),)),
            case((2, 3, 4), args=((Ellipsis, None, 1),)),
            case((2, 3, 4), args=((1, slice(None), -2),)),
            case((3, 4), args=(np.array([0, 2, 0, 0]),)),  # repeated rows: gradients add up
            case((3, 4), args=(np.array([[0, 1], [1, 1]]),)),
            case((3, 4), args=(np.array([-1, 0, -1]),)),
            case((3, 4), args=((np.array([0, 0, 2, 0]), np.array([1, 1, 3, 1])),)),
            case((3, 4), args=((slice(None), np.array([3, 3, 0])),)),
            case((2, 3, 4), args=((np.array([1, 1]), slice(None), np.array([0, 0])),)),
            case((3, 4), args=([0, 0, 2],)),  # a Python list of ints
            case((3, 4), args=(mask((3, 4)),)),  # boolean masks
            case((3, 4), args=(mask((3,), 0.7),)),
            case((2, 3, 4), args=((slice(None), mask((3,), 0.7)),)),
            case((1,), args=(0,)),
            case((1, 1), args=((0, 0),)),
            case((0, 4), args=((slice(None), 1),)),
            case((3, 4), args=(np.array([], dtype=np.int64),)),
            case((3, 4), args=(np.zeros((3, 4), dtype=bool),)),
        ],
        method=operator.getitem,
    ),
    # joining and selection
    OpRow(
        "cat",
        lambda *xs, dim=0: np.concatenate(xs, axis=dim),
        [
            case((2, 3), (4, 3)),
            case((2, 3), (2, 1), (2, 2), dim=1),
            case((2, 3, 4), (2, 3, 1), dim=-1),
            case((2, 3)),
            case((1,), (1,)),
            case((0, 3), (2, 3)),
            case((2, 0), (2, 3), dim=1),
        ],
        fn=lambda *xs, dim=0: F.cat(xs, dim),
    ),
    OpRow(
        "stack",
        lambda *xs, dim=0: np.stack(xs, axis=dim),
        [
            case((3, 4), (3, 4)),
            case((3, 4), (3, 4), (3, 4), dim=1),
            case((3, 4), (3, 4), dim=-1),
            case((), ()),
            case((1,), (1,), dim=-1),
            case((0, 3), (0, 3), dim=1),
        ],
        fn=lambda *xs, dim=0: F.stack(xs, dim),
    ),
    OpRow(
        "where",
        lambda a, b, cond: np.where(cond, a, b),
        [
            case((3, 4), (3, 4), cond=mask((3, 4))),
            case((3, 4), (4,), cond=mask((3, 4))),
            case((3, 1), (1, 4), cond=mask((3, 4))),
            case((3, 4), (3, 4), cond=mask((4,))),  # the condition broadcasts too
            case((4,), (4,), cond=mask((3, 1))),
            case((3, 4), 0.0, cond=mask((3, 4))),
            case(1.5, (3, 4), cond=mask((3, 4))),
            case((), (), cond=np.array(True)),
            case((1,), (1,), cond=mask((1,))),
            case((0, 4), (4,), cond=mask((0, 4))),
        ],
        fn=lambda a, b, cond: F.where(cond, a, b),
    ),
    OpRow(
        "masked_fill",
        lambda x, mask, value: np.where(mask, value, x),
        [
            case((3, 4), mask=mask((3, 4)), value=-1.5),
            case((3, 4), mask=mask((4,)), value=0.0),
            case((2, 3, 4), mask=mask((3, 1)), value=2.0),
            case((1,), mask=np.array([True]), value=3.0),
            case((0, 4), mask=mask((0, 4)), value=1.0),
        ],
        method=Tensor.masked_fill,
    ),
    OpRow(
        "clamp",
        np_clamp,
        [
            case((3, 4), min=-0.5, max=0.5),
            case((3, 4), min=-0.5),
            case((3, 4), max=0.5),
            case((2, 3, 4), args=(-0.5, 0.5)),
            case((), min=-0.5),
            case((1,), max=0.5),
            case((0, 3), min=-0.5, max=0.5),
        ],
        method=Tensor.clamp,
        domain=away_from(-0.5, 0.5),
    ),
    # comparisons (no gradient)
    *[
        OpRow(op, ref, BINARY, domain=small_integers, differentiable=False, method=method)
        for op, ref, method in [
            ("eq", np.equal, operator.eq),
            ("ne", np.not_equal, operator.ne),
            ("lt", np.less, operator.lt),
            ("le", np.less_equal, operator.le),
            ("gt", np.greater, operator.gt),
            ("ge", np.greater_equal, operator.ge),
        ]
    ],
    # linear algebra
    OpRow("linear", np_linear, LINEAR, tol32=(1e-5, 1e-5), tol64=(1e-9, 1e-12)),
    # losses
    OpRow("mse_loss", np_mse_loss, pointwise_loss_cases()),
    OpRow("l1_loss", np_l1_loss, pointwise_loss_cases()),
    OpRow(
        "binary_cross_entropy",
        np_bce,
        [
            case((3, 4), (3, 4)),
            case((3, 4), (3, 4), reduction="sum"),
            case((3, 4), (3, 4), reduction="none"),
            case((3, 4), (3, 4), weight=weights((3, 4))),
            case((3, 4), (3, 4), weight=weights((4,)), reduction="sum"),
            case((1,), (1,)),
            case((0,), (0,), reduction="sum"),
        ],
        domain=(probability, unit_interval),
        tol32=(5e-5, 5e-6),
    ),
    OpRow(
        "binary_cross_entropy_with_logits",
        np_bce_with_logits,
        [
            case((3, 4), (3, 4)),
            case((3, 4), (3, 4), reduction="sum"),
            case((3, 4), (3, 4), reduction="none"),
            case((3, 4), (3, 4), weight=weights((3, 4))),
            case((3, 4), (3, 4), pos_weight=weights((4,))),
            case((3, 4), (3, 4), pos_weight=weights((4,)), weight=weights((3, 1)), reduction="sum"),
            case((), ()),
            case((0, 2), (0, 2), reduction="none"),
        ],
        domain=(normal, unit_interval),
        tol32=(5e-5, 5e-6),
    ),
    OpRow(  # pos_weight as an input that takes a gradient
        "binary_cross_entropy_with_logits",
        lambda x, t, pw, **kw: np_bce_with_logits(x, t, pos_weight=pw, **kw),
        [
            case((3, 4), (3, 4), (4,)),
            case((3, 4), (3, 4), (3, 1), reduction="none"),
            case((1,), (1,), (1,), reduction="sum"),
            case((0, 4), (0, 4), (4,), reduction="sum"),
        ],
        name="binary_cross_entropy_with_logits.pos_weight",
        fn=lambda x, t, pw, **kw: F.binary_cross_entropy_with_logits(x, t, pos_weight=pw, **kw),
        domain=(normal, unit_interval, positive),
        tol32=(5e-5, 5e-6),
    ),
    OpRow(
        "cross_entropy",
        np_cross_entropy,
        [
            case((5, 4), target=labels((5,), 4)),
            case((5, 4), target=labels((5,), 4), reduction="sum"),
            case((5, 4), target=labels((5,), 4), reduction="none"),
            case((5, 4), target=labels((5,), 4), weight=weights((4,))),
            case((5, 4), target=labels((5,), 4, ignore=-100)),
            case((5, 4), target=labels((5,), 4, ignore=2), ignore_index=2, reduction="none"),
            case((5, 4), target=labels((5,), 4), label_smoothing=0.1),
            case(
                (5, 4),
                target=labels((5,), 4, ignore=-100),
                weight=weights((4,)),
                label_smoothing=0.2,
            ),
            case((2, 4, 3), target=labels((2, 3), 4)),  # (N, C, d1)
            case((2, 4, 3), target=labels((2, 3), 4), reduction="none"),
            case((4,), target=np.array(1)),  # one sample, 0-d target
            case((5, 4), target=probs((5, 4))),  # class probabilities
            case((5, 4), target=probs((5, 4)), label_smoothing=0.1, weight=weights((4,))),
            case((3, 4), target=np.full(3, -100)),  # all ignored: 0 / 0, nan as in PyTorch
            case((1, 1), target=np.array([0])),
            case((0, 4), target=labels((0,), 4)),  # nan, as in PyTorch
            case((0, 4), target=labels((0,), 4), reduction="sum"),
            case((0, 4), target=labels((0,), 4), reduction="none"),
        ],
        tol32=(5e-5, 5e-6),
        tol64=(1e-9, 1e-12),
    ),
    OpRow(  # class probabilities as an input that takes a gradient
        "cross_entropy",
        lambda x, t, **kw: np_cross_entropy(x, t, **kw),
        [
            case((5, 4), (5, 4)),
            case((5, 4), (5, 4), reduction="sum", label_smoothing=0.1),
            case((2, 4, 3), (2, 4, 3), reduction="none", weight=weights((4,))),
            case((4,), (4,)),
            case((1, 1), (1, 1)),
            case((0, 4), (0, 4), reduction="sum"),
        ],
        name="cross_entropy.soft_target",
        domain=(normal, unit_interval),
        tol32=(5e-5, 5e-6),
    ),
    OpRow(
        "nll_loss",
        np_nll_loss,
        [
            case((5, 4), target=labels((5,), 4)),
            case((5, 4), target=labels((5,), 4), reduction="sum"),
            case((5, 4), target=labels((5,), 4), reduction="none"),
            case((5, 4), target=labels((5,), 4), weight=weights((4,))),
            case((5, 4), target=labels((5,), 4, ignore=3), ignore_index=3),
            case((1, 1), target=np.array([0])),
            case((0, 4), target=labels((0,), 4)),
            case((0, 4), target=labels((0,), 4), reduction="sum"),
        ],
    ),
    # more unary math (gnn/ops/unary.py)
    OpRow("sin", np.sin, UNARY, method=Tensor.sin),
    OpRow("cos", np.cos, UNARY, method=Tensor.cos),
    OpRow("log1p", np.log1p, UNARY, method=Tensor.log1p, domain=positive),
    OpRow("expm1", np.expm1, UNARY, method=Tensor.expm1),
    OpRow("square", np.square, UNARY, method=Tensor.square),
    OpRow("rsqrt", lambda x: 1 / np.sqrt(x), UNARY, method=Tensor.rsqrt, domain=positive),
    OpRow("reciprocal", lambda x: 1 / x, UNARY, method=Tensor.reciprocal, domain=nonzero_wide),
    OpRow("silu", lambda x: x * np_sigmoid(x), UNARY),
    OpRow(
        "softplus",
        np_softplus,
        UNARY + [case((3, 4), beta=2.0, threshold=1.0), case((5,), args=(0.5, 0.2))],
        domain=away_from(0.1, 0.4, 0.5, gap=0.05),  # clear of the thresholds' kinks
    ),
    OpRow("sign", np.sign, UNARY, method=Tensor.sign, differentiable=False),
    OpRow("floor", np.floor, UNARY, method=Tensor.floor, differentiable=False),
    OpRow("ceil", np.ceil, UNARY, method=Tensor.ceil, differentiable=False),
    OpRow("round", np.round, UNARY, method=Tensor.round, differentiable=False),
    OpRow(
        "isnan",
        np.isnan,
        UNARY,
        method=Tensor.isnan,
        domain=with_specials,
        differentiable=False,
        out_dtype="bool",
    ),
    OpRow(
        "isfinite",
        np.isfinite,
        UNARY,
        method=Tensor.isfinite,
        domain=with_specials,
        differentiable=False,
        out_dtype="bool",
    ),
    # newer reductions and scans
    OpRow(
        "logsumexp",
        np_logsumexp,
        [
            case((3, 4), args=(1,)),
            case((3, 4), args=(-1,), keepdim=True),
            case((2, 3, 4), args=((0, 2),)),
            case((2, 3, 4), args=(0,), keepdim=True),
            case((), args=(0,)),
            case((1,), args=(0,)),
            case((1, 1), args=((0, 1),)),
            case((0, 3), args=(1,)),
        ],
        method=Tensor.logsumexp,
    ),
    OpRow(
        "cumsum",
        np_cumsum,
        [
            case((3, 4), args=(1,)),
            case((3, 4), args=(0,)),
            case((2, 3, 4), args=(-2,)),
            case((5,), args=(0,)),
            case((), args=(0,)),
            case((1,), args=(0,)),
            case((0, 3), args=(1,)),
        ],
        method=Tensor.cumsum,
        tol32=(5e-5, 5e-6),
    ),
    OpRow(
        "mm",
        np.matmul,
        [case((3, 4), (4, 5)), case((1, 1), (1, 1)), case((0, 4), (4, 2)), case((3, 0), (0, 2))],
        method=Tensor.mm,
        tol32=(1e-5, 1e-5),
    ),
    OpRow(
        "bmm",
        np.matmul,
        [case((2, 3, 4), (2, 4, 5)), case((1, 1, 1), (1, 1, 1)), case((0, 3, 4), (0, 4, 2))],
        method=Tensor.bmm,
        tol32=(1e-5, 1e-5),
    ),
    # selection (gnn/ops/select.py)
    OpRow(
        "narrow",
        np_narrow,
        [
            case((3, 4), args=(1, 1, 2)),
            case((2, 3, 4), args=(-1, 0, 4)),
            case((5,), args=(0, 4, 0)),
            case((1,), args=(0, 0, 1)),
            case((0, 3), args=(1, 1, 1)),
        ],
        method=Tensor.narrow,
    ),
    OpRow(
        "split",
        lambda x, sizes, dim=0: np_split_pieces(x, sizes, dim)[-1],
        [
            case((5, 4), args=(2,)),
            case((3, 4), args=([1, 3], 1)),
            case((2, 6, 2), args=(4, -2)),
            case((1,), args=(1,)),
            case((0, 3), args=(2, 1)),
        ],
        fn=lambda x, *a: F.split(x, *a)[-1],
        method=lambda x, *a: x.split(*a)[-1],
    ),
    OpRow(
        "split",
        lambda x, sizes, dim=0: np_split_pieces(x, sizes, dim)[0],
        [case((5, 4), args=(2,)), case((3, 4), args=([1, 3], 1)), case((1,), args=(1,))]
        + [case((0, 3), args=(2,))],
        name="split_first",
        fn=lambda x, *a: F.split(x, *a)[0],
    ),
    OpRow(
        "chunk",
        lambda x, chunks, dim=0: np_split_pieces(x, -(-x.shape[dim] // chunks) or 1, dim)[0],
        [
            case((5, 4), args=(2,)),
            case((3, 7), args=(3, 1)),
            case((4,), args=(8,)),
            case((1,), args=(1,)),
            case((0, 3), args=(2, 1)),
        ],
        fn=lambda x, *a: F.chunk(x, *a)[0],
        method=lambda x, *a: x.chunk(*a)[0],
    ),
    OpRow(
        "flip",
        lambda x, dims: np.flip(x, dims),
        [
            case((3, 4), args=((0,),)),
            case((2, 3, 4), args=((0, 2),)),
            case((2, 3, 4), args=((-1,),)),
            case((), args=((),)),
            case((1,), args=((0,),)),
            case((0, 3), args=((1,),)),
        ],
        method=lambda x, dims: x.flip(*dims),
    ),
    OpRow(
        "index_select",
        lambda x, dim, index: np.take(x, index, axis=dim),
        [
            case((3, 4), args=(1, np.array([3, 0, 3]))),
            case((3, 4), args=(0, np.array([2]))),
            case((2, 3, 4), args=(-2, np.array([1, 1, 0, 2]))),
            case((1,), args=(0, np.array([0, 0]))),
            case((0, 3), args=(1, np.array([2]))),
            case((3, 2), args=(0, np.zeros(0, dtype=np.int64))),
        ],
        method=Tensor.index_select,
    ),
    OpRow(
        "gather",
        np_gather,
        [
            case((3, 4), args=(1, np.array([[0, 0], [1, 0], [3, 2]]))),
            case((3, 4), args=(0, np.array([[2, 0, 1, 1], [0, 0, 2, 1]]))),
            case((3, 4), args=(1, np.array([[3, 3], [0, 1]]))),  # smaller than x in dim 0
            case((2, 3, 4), args=(-1, np.array([[[0, 3, 1, 1, 2]] * 3] * 2))),
            case((1,), args=(0, np.array([0, 0, 0]))),
            case((0, 3), args=(1, np.zeros((0, 2), dtype=np.int64))),
        ],
        method=Tensor.gather,
    ),
    OpRow(
        "sort",
        lambda x, dim=-1, descending=False: np_sort(x, dim, descending)[0],
        SORT,
        fn=lambda x, *a, **k: F.sort(x, *a, **k).values,
        method=lambda x, *a, **k: x.sort(*a, **k)[0],
        domain=distinct,
    ),
    OpRow(
        "sort",
        lambda x, dim=-1, descending=False: np_sort(x, dim, descending)[1],
        SORT,
        name="sort_indices",
        fn=lambda x, *a, **k: F.sort(x, *a, **k).indices,
        domain=distinct,
        differentiable=False,
    ),
    OpRow(
        "topk",
        lambda x, k, dim=-1, largest=True: np_topk(x, k, dim, largest)[0],
        TOPK,
        fn=lambda x, *a, **k: F.topk(x, *a, **k).values,
        method=lambda x, *a, **k: x.topk(*a, **k)[0],
        domain=distinct,
    ),
    OpRow(
        "topk",
        lambda x, k, dim=-1, largest=True: np_topk(x, k, dim, largest)[1],
        TOPK,
        name="topk_indices",
        fn=lambda x, *a, **k: F.topk(x, *a, **k).indices,
        domain=distinct,
        differentiable=False,
    ),
    OpRow(
        "tril",
        np.tril,
        TRIANGLE,
        method=Tensor.tril,
    ),
    OpRow(
        "triu",
        np.triu,
        TRIANGLE,
        method=Tensor.triu,
    ),
    OpRow(
        "repeat",
        lambda x, sizes: np.tile(x, sizes),
        [
            case((2, 3), args=((2, 1),)),
            case((3,), args=((2, 2),)),
            case((2, 3), args=((1, 1),)),
            case((), args=((3,),)),
            case((1,), args=((1,),)),
            case((0, 2), args=((2, 3),)),
            case((2, 3), args=((0, 1),)),
        ],
        fn=lambda x, sizes: F.repeat(x, *sizes),
        method=lambda x, sizes: x.repeat(*sizes),
    ),
    OpRow(
        "t",
        np_t,
        [case((3, 4)), case((5,)), case(()), case((1, 1)), case((0, 3))],
        method=Tensor.t,
    ),
]

# Registered ops (gnn/ops/registry.py) that have no row, and where they are tested instead. An op's
# aliases (clip for clamp, ...) are names of the same function, covered by its row.
NOT_IN_TABLE = {
    "argmax": "no gradient; max_indices covers the same selection",
    "argmin": "no gradient; min_indices covers the same selection",
    "to_device": "needs two devices: test_gradients_flow_back_across_devices in test_ops.py",
    "dropout": "random: nn.Dropout in tests/test_transformer.py",
    "embedding": "tests/test_embedding.py",
    "layer_norm": "tests/test_layer_norm.py",
    "batch_norm": "tests/test_batchnorm.py",
    "conv2d": "tests/test_conv.py",
    "conv_transpose2d": "tests/test_conv.py",
    "max_pool2d": "tests/test_conv.py",
    "avg_pool2d": "tests/test_conv.py",
    "scaled_dot_product_attention": "tests/test_attention.py",
    # PyTorch's other spellings with their own argument names, which call the ops whose rows
    # cover them; values and gradients against PyTorch are in tests/test_torch_tensor_api.py.
    "concatenate": "calls cat",
    "swapaxes": "calls transpose",
    "argsort": "calls sort (its indices)",
    "unbind": "calls narrow and squeeze",
    "multinomial": "random, no gradient: tests/test_torch_tensor_api.py",
}
