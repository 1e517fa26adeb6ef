"""Loss functions: mse, binary cross-entropy (probabilities and logits), cross-entropy, nll.

cross_entropy runs through the backend's fused softmax-cross-entropy (a CUDA kernel on the GPU).
The prediction (input) must be a gnn Tensor; targets and weights may also be NumPy arrays or lists,
which are converted onto the input's device (a documented choice: labels often come from NumPy).
"""

from __future__ import annotations

import os
from typing import Any

from gnn.autograd import Function
from gnn.backend.fused import sigmoid as fused_sigmoid
from gnn.backend.fused import softmax_cross_entropy as fused_ce
from gnn.dtypes import is_floating
from gnn.ops._util import as_tensor
from gnn.ops.autocast import cast_inputs
from gnn.ops.elementwise import clamp, log
from gnn.ops.reduce import log_softmax
from gnn.ops.reduce import mean as _mean
from gnn.ops.reduce import sum as _sum
from gnn.ops.registry import register
from gnn.ops.shape import getitem, permute, reshape
from gnn.tensor import Tensor

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(op: str, reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return _mean(loss)
    if reduction == "sum":
        return _sum(loss)
    return loss


def _check_input(op: str, input: Any) -> None:
    """The prediction must be a gnn Tensor (targets may be arrays or lists: they are converted)."""
    if not isinstance(input, Tensor):
        raise TypeError(
            f"{op}: input must be a gnn Tensor, got a {type(input).__module__}."
            f"{type(input).__name__}; wrap it with gnn.tensor(...) (targets may be arrays)"
        )


def _check_device(op: str, input: Tensor, other: Any, what: str = "target") -> None:
    """The same "different devices" error as every other op, for Tensors used by their data."""
    if isinstance(other, Tensor) and other._be is not input._be:
        raise RuntimeError(
            f"{op}: inputs are on different devices ({input.device} and {other.device}, the "
            f"{what}); move them with .to(device) first"
        )


def _check_float_input(op: str, input: Tensor, what: str) -> None:
    if not is_floating(input.dtype):
        raise TypeError(
            f"{op}: input ({what}) must be floating point, got {input.dtype}; "
            "convert it with .float() (integer scores would be cast silently otherwise)"
        )


def _check_probabilities(op: str, input: Tensor) -> None:
    """Raise ValueError for finite values outside [0, 1] (NaN passes: fit reports NaN losses).

    On the CPU this is one min and max. On a GPU it would make every training step wait for the
    device, so it runs only with GNN_DEBUG_SYNC=1; there out-of-range values give a NaN loss
    (log of a negative number), which fit's NaN check stops at.
    """
    be = input._be
    if input.array.size == 0:
        return
    if be.device.type != "cpu" and os.environ.get("GNN_DEBUG_SYNC") != "1":
        return
    data = input.array
    lo, hi = (float(v) for v in be.to_numpy(be.xp.stack((data.min(), data.max()))))
    if lo < 0.0 or hi > 1.0:
        bad = lo if lo < 0.0 else hi
        raise ValueError(
            f"{op}: input must hold probabilities in [0, 1], got values in [{lo:g}, {hi:g}] "
            f"(e.g. {bad:g}); apply sigmoid first, or use binary_cross_entropy_with_logits "
            "(BCEWithLogitsLoss) on raw scores"
        )


def _check_same_shape(op: str, input: Tensor, target: Tensor) -> None:
    if input.shape != target.shape:
        raise ValueError(
            f"{op}: input shape {input.shape} and target shape {target.shape} differ "
            "(broadcasting them is almost always a bug; reshape one to match)"
        )


@register()
def mse_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Mean squared error between input and target (same shape)."""
    _check_reduction("mse_loss", reduction)
    input, target = cast_inputs("mse_loss", input, target)
    _check_input("mse_loss", input)
    target = as_tensor(target, input)
    _check_same_shape("mse_loss", input, target)
    diff = input - target
    return _reduce(diff * diff, reduction)


@register()
def l1_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Mean absolute error between input and target (same shape)."""
    _check_reduction("l1_loss", reduction)
    input, target = cast_inputs("l1_loss", input, target)
    _check_input("l1_loss", input)
    target = as_tensor(target, input)
    _check_same_shape("l1_loss", input, target)
    return _reduce((input - target).abs(), reduction)


@register()
def binary_cross_entropy(
    input: Tensor, target: Any, weight: Any = None, reduction: str = "mean"
) -> Tensor:
    """BCE on probabilities in [0, 1]; logs are clamped at -100 as in PyTorch."""
    _check_reduction("binary_cross_entropy", reduction)
    input, target = cast_inputs("binary_cross_entropy", input, target)
    _check_input("binary_cross_entropy", input)
    target = as_tensor(target, input)
    _check_same_shape("binary_cross_entropy", input, target)
    _check_probabilities("binary_cross_entropy", input)
    loss = -(
        target * clamp(log(input), min=-100.0) + (1 - target) * clamp(log(1 - input), min=-100.0)
    )
    if weight is not None:
        loss = loss * as_tensor(weight, input)
    return _reduce(loss, reduction)


class BCEWithLogits(Function):
    """loss = (1 - t) x + c softplus(-x), c = 1 + (pos_weight - 1) t: stable for any |x|."""

    def forward(self, x: Any, t: Any, pos_weight: Any = None) -> Any:
        xp = self.be.xp
        self.x, self.t, self.pw = x, t, pos_weight
        softplus_neg = xp.logaddexp(0, -x)  # log(1 + e^-x), no overflow
        self.softplus_neg = softplus_neg
        c = 1 if pos_weight is None else 1 + (pos_weight - 1) * t
        return (1 - t) * x + c * softplus_neg

    def backward(self, gy: Any) -> Any:
        x, t, pw = self.x, self.t, self.pw
        sig_neg = fused_sigmoid.forward(self.be, -x)  # sigma(-x) = 1 - sigma(x)
        c = 1 if pw is None else 1 + (pw - 1) * t
        gx = gy * ((1 - t) - c * sig_neg) if self.needs_input_grad[0] else None
        gt = None
        if self.needs_input_grad[1]:
            gt = gy * (-x + (0 if pw is None else (pw - 1) * self.softplus_neg))
        gpw = None
        if pw is not None and self.needs_input_grad[2]:
            gpw = gy * t * self.softplus_neg
        return gx, gt, gpw


@register()
def binary_cross_entropy_with_logits(
    input: Tensor,
    target: Any,
    weight: Any = None,
    reduction: str = "mean",
    pos_weight: Any = None,
) -> Tensor:
    """BCE on logits (sigmoid folded in), numerically stable for large |input|."""
    _check_reduction("binary_cross_entropy_with_logits", reduction)
    input, target = cast_inputs("binary_cross_entropy_with_logits", input, target)
    _check_input("binary_cross_entropy_with_logits", input)
    target = as_tensor(target, input)
    _check_same_shape("binary_cross_entropy_with_logits", input, target)
    if pos_weight is None:
        loss = BCEWithLogits.apply(input, target)
    else:
        loss = BCEWithLogits.apply(input, target, as_tensor(pos_weight, input))
    if weight is not None:
        loss = loss * as_tensor(weight, input)
    return _reduce(loss, reduction)


class SoftmaxCrossEntropy(Function):
    """Fused log-softmax + nll over (N, C) logits and (N,) labels; backward in one pass."""

    def __init__(self, target: Any, spec: fused_ce.Spec):
        self.target, self.spec = target, spec

    def forward(self, logits: Any) -> Any:
        self.logits = logits
        loss, self.saved = fused_ce.forward(self.be, logits, self.target, self.spec)
        return loss

    def backward(self, gy: Any) -> Any:
        return fused_ce.backward(self.be, self.logits, self.target, self.saved, gy, self.spec)


@register()
def cross_entropy(
    input: Tensor,
    target: Any,
    weight: Any = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Cross-entropy of softmax(input) against class labels or class probabilities.

    input: (N, C), (C,) or (N, C, d1, ...) logits; target: labels of shape (N,) / () / (N, d1, ...)
    in [0, C) or ignore_index, or probabilities of input's shape.
    """
    _check_reduction("cross_entropy", reduction)
    input, target = cast_inputs("cross_entropy", input, target)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    _check_input("cross_entropy", input)
    _check_float_input("cross_entropy", input, "logits")
    _check_device("cross_entropy", input, target)
    _check_device("cross_entropy", input, weight, "weight")
    target = as_tensor(target, input) if not isinstance(target, Tensor) else target
    if isinstance(target, Tensor) and is_floating(target.dtype):
        if target.shape != input.shape:
            raise ValueError(
                f"cross_entropy: target has dtype {target.dtype} and shape {target.shape}: "
                f"class labels must be integers (convert them with .long()), and class "
                f"probabilities must have the input's shape {input.shape}"
            )
        return _soft_cross_entropy(input, target, weight, reduction, label_smoothing)
    if input.ndim == 0:
        raise ValueError("cross_entropy: input must have a class dimension, got a 0-d tensor")
    if target.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: target must hold integer class labels, got {target.dtype}")
    if input.ndim == 1:  # one sample
        if target.ndim != 0:
            raise ValueError(f"cross_entropy: input (C,) needs a 0-d target, got {target.shape}")
        loss = cross_entropy(
            reshape(input, (1, -1)),
            reshape(target, (1,)),
            weight,
            ignore_index,
            reduction,
            label_smoothing,
        )
        return reshape(loss, ()) if reduction == "none" else loss
    n, c = input.shape[0], input.shape[1]
    expected = (n,) + input.shape[2:]
    if target.shape != expected:
        raise ValueError(
            f"cross_entropy: input {input.shape} needs target of shape {expected}, "
            f"got {target.shape}"
        )
    if c == 0:
        raise ValueError(f"cross_entropy: input {input.shape} has no classes")
    w = None
    if weight is not None:
        w = as_tensor(weight, input).array
        if w.shape != (c,):
            raise ValueError(f"cross_entropy: weight must have shape ({c},), got {tuple(w.shape)}")
    logits = input
    if input.ndim > 2:  # (N, C, d...) -> (N * d..., C)
        logits = reshape(permute(input, (0,) + tuple(range(2, input.ndim)) + (1,)), (-1, c))
    labels = target.array.reshape(-1)
    spec = fused_ce.Spec(w, int(ignore_index), reduction, float(label_smoothing))
    loss = SoftmaxCrossEntropy.apply(logits, target=labels, spec=spec)
    if reduction == "none" and input.ndim != 2:
        loss = reshape(loss, expected)
    return loss


def _soft_cross_entropy(
    input: Tensor, target: Tensor, weight: Any, reduction: str, label_smoothing: float
) -> Tensor:
    """Cross-entropy against class probabilities (composed; the class dim is dim 1)."""
    _check_same_shape("cross_entropy", input, target)
    dim = 1 if input.ndim > 1 else 0
    c = input.shape[dim]
    if label_smoothing:
        target = target * (1 - label_smoothing) + label_smoothing / c
    logp = log_softmax(input, dim)
    if weight is not None:
        if tuple(as_tensor(weight, input).shape) != (c,):
            raise ValueError(
                f"cross_entropy: weight must have shape ({c},), got "
                f"{tuple(as_tensor(weight, input).shape)}"
            )
        shape = [1] * input.ndim
        shape[dim] = c
        logp = logp * reshape(as_tensor(weight, input), tuple(shape))
    loss = -_sum(logp * target, dim)
    if reduction == "mean":
        return _sum(loss) / max(loss.array.size, 1)
    return _reduce(loss, reduction)


@register()
def nll_loss(
    input: Tensor,
    target: Any,
    weight: Any = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> Tensor:
    """Negative log-likelihood of log-probabilities (N, C) at labels (N,)."""
    _check_reduction("nll_loss", reduction)
    input, target = cast_inputs("nll_loss", input, target)
    _check_input("nll_loss", input)
    _check_float_input("nll_loss", input, "log-probabilities")
    _check_device("nll_loss", input, target)
    _check_device("nll_loss", input, weight, "weight")
    target = as_tensor(target, input) if not isinstance(target, Tensor) else target
    if input.ndim != 2 or target.shape != (input.shape[0],):
        raise ValueError(
            f"nll_loss: expected input (N, C) and target (N,), got {input.shape} and {target.shape}"
        )
    if target.dtype.kind not in "iu":
        raise TypeError(
            f"nll_loss: target must hold integer class labels, got {target.dtype}; "
            "convert them with .long()"
        )
    be = input._be
    xp = be.xp
    n, c = input.shape
    labels = target.array
    fused_ce.check_targets(xp, labels, c, ignore_index)
    valid = labels != ignore_index
    safe = xp.where(valid, labels, 0)
    w = xp.ones((c,), input.dtype) if weight is None else as_tensor(weight, input).array
    if w.shape != (c,):
        raise ValueError(f"nll_loss: weight must have shape ({c},), got {tuple(w.shape)}")
    w_t = Tensor._make(xp.where(valid, w[safe], 0).astype(input.dtype), be, False)
    picked = getitem(input, (xp.arange(n), safe))
    loss = -picked * w_t
    if reduction == "none":
        return loss
    if reduction == "sum":
        return _sum(loss)
    return _sum(loss) / Tensor._make(w_t.array.sum(), be, False)
