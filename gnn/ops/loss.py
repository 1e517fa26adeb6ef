"""Loss functions: mse, binary cross-entropy (probabilities and logits), cross-entropy, nll.

cross_entropy runs through the backend's fused softmax-cross-entropy (a CUDA kernel on the GPU).
The prediction (input) must be a gnn Tensor; targets and weights may also be NumPy arrays or lists,
which are converted onto the input's device (a documented choice: labels often come from NumPy).
"""

from __future__ import annotations

import dataclasses
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
from gnn.ops.shape import permute, reshape
from gnn.tensor import Tensor

# Each reduction's op: the loss's mean, its sum, or the loss itself ("none").
_REDUCE = {"mean": _mean, "sum": _sum, "none": lambda loss: loss}


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    return _REDUCE[reduction](loss)


def _start(op: str, input: Any, target: Any, reduction: str) -> tuple[Tensor, Tensor]:
    """The checks every loss begins with; the prediction must be a gnn Tensor (targets may be
    arrays or lists: they are converted onto its device)."""
    if reduction not in _REDUCE:
        raise ValueError(f"{op}: reduction must be one of {tuple(_REDUCE)}, got {reduction!r}")
    input, target = cast_inputs(op, input, target)
    if not isinstance(input, Tensor):
        raise TypeError(
            f"{op}: input must be a gnn Tensor, got a {type(input).__module__}."
            f"{type(input).__name__}; wrap it with gnn.tensor(...) (targets may be arrays)"
        )
    return input, as_tensor(target, input)


def _check_probabilities(op: str, input: Tensor) -> None:
    """Raise ValueError for finite values outside [0, 1] (NaN passes: fit reports NaN losses).

    On the CPU this is one min and max. On a GPU it would make every training step wait for the
    device, so it runs only with GNN_DEBUG_SYNC=1; there out-of-range values give a NaN loss
    (log of a negative number), which fit's NaN check stops at.
    """
    be, data = input._be, input.array
    if data.size == 0 or (be.device.type != "cpu" and os.environ.get("GNN_DEBUG_SYNC") != "1"):
        return
    lo, hi = (float(v) for v in be.to_numpy(be.xp.stack((data.min(), data.max()))))
    if lo < 0.0 or hi > 1.0:
        bad = lo if lo < 0.0 else hi
        raise ValueError(
            f"{op}: input must hold probabilities in [0, 1], got values in [{lo:g}, {hi:g}] "
            f"(e.g. {bad:g}); apply sigmoid first, or use binary_cross_entropy_with_logits "
            "(BCEWithLogitsLoss) on raw scores"
        )


def _elementwise_inputs(op: str, input: Any, target: Any, reduction: str) -> tuple[Tensor, Tensor]:
    """The checks of the losses that compare input and target element by element."""
    input, target = _start(op, input, target, reduction)
    if input.shape != target.shape:
        raise ValueError(
            f"{op}: input shape {input.shape} and target shape {target.shape} differ "
            "(broadcasting them is almost always a bug; reshape one to match)"
        )
    return input, target


def _weighted(loss: Tensor, weight: Any, reduction: str) -> Tensor:
    """The elementwise loss times weight (None: no weights), reduced."""
    return _reduce(loss if weight is None else loss * as_tensor(weight, loss), reduction)


def _class_inputs(
    op: str, input: Any, target: Any, weight: Any, reduction: str, what: str
) -> tuple[Tensor, Tensor]:
    """The checks cross_entropy and nll_loss share: scores `what` (floating) and class targets."""
    input, target = _start(op, input, target, reduction)
    if not is_floating(input.dtype):
        raise TypeError(
            f"{op}: input ({what}) must be floating point, got {input.dtype}; "
            "convert it with .float() (integer scores would be cast silently otherwise)"
        )
    for name, other in (("target", target), ("weight", weight)):
        if isinstance(other, Tensor) and other._be is not input._be:  # used by their data
            raise RuntimeError(
                f"{op}: inputs are on different devices ({input.device} and {other.device}, the "
                f"{name}); move them with .to(device) first"
            )
    return input, target


def _class_weight(op: str, weight: Any, input: Tensor, c: int) -> Tensor | None:
    """The class weights as a (C,) Tensor, or None."""
    if weight is None:
        return None
    w = as_tensor(weight, input)
    if w.shape != (c,):
        raise ValueError(f"{op}: weight must have shape ({c},), got {tuple(w.shape)}")
    return w


def _labels(op: str, input: Tensor, target: Tensor) -> tuple[int, tuple]:
    """(C, the shape of an unreduced loss) after checking class labels against scores `input`:
    (C,) with a 0-d target, (N, C) with (N,), or (N, C, d1, ...) with (N, d1, ...)."""
    if input.ndim == 0:
        raise ValueError(f"{op}: input must have a class dimension, got a 0-d tensor")
    if target.dtype.kind not in "iu":
        raise TypeError(
            f"{op}: target must hold integer class labels, got {target.dtype}; "
            "convert them with .long()"
        )
    if input.ndim == 1 and target.ndim != 0:  # one sample
        raise ValueError(f"{op}: input (C,) needs a 0-d target, got {target.shape}")
    c = input.shape[0] if input.ndim == 1 else input.shape[1]
    expected = () if input.ndim == 1 else (input.shape[0],) + input.shape[2:]
    if target.shape != expected:
        raise ValueError(
            f"{op}: input {input.shape} needs target of shape {expected}, got {target.shape}"
        )
    if c == 0:
        raise ValueError(f"{op}: input {input.shape} has no classes")
    return c, expected


def _rows(input: Tensor, c: int) -> Tensor:
    """Scores (C,), (N, C) or (N, C, d1, ...) as (rows, C): (1, C), as they are, (N * d..., C)."""
    if input.ndim > 2:  # classes last: (N, d..., C)
        input = permute(input, (0,) + tuple(range(2, input.ndim)) + (1,))
    return input if input.ndim == 2 else reshape(input, (-1, c))


@register()
def mse_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Mean squared error between input and target (same shape)."""
    input, target = _elementwise_inputs("mse_loss", input, target, reduction)
    diff = input - target
    return _reduce(diff * diff, reduction)


@register()
def l1_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Mean absolute error between input and target (same shape)."""
    input, target = _elementwise_inputs("l1_loss", input, target, reduction)
    return _reduce((input - target).abs(), reduction)


@register()
def binary_cross_entropy(
    input: Tensor, target: Any, weight: Any = None, reduction: str = "mean"
) -> Tensor:
    """BCE on probabilities in [0, 1]; logs are clamped at -100 as in PyTorch."""
    input, target = _elementwise_inputs("binary_cross_entropy", input, target, reduction)
    _check_probabilities("binary_cross_entropy", input)
    loss = -(
        target * clamp(log(input), min=-100.0) + (1 - target) * clamp(log(1 - input), min=-100.0)
    )
    return _weighted(loss, weight, reduction)


class BCEWithLogits(Function):
    """loss = (1 - t) x + c softplus(-x), c = 1 + (pos_weight - 1) t: stable for any |x|."""

    def forward(self, x: Any, t: Any, pos_weight: Any = None) -> Any:
        self.x, self.t, self.pw = x, t, pos_weight
        self.softplus_neg = self.be.xp.logaddexp(0, -x)  # log(1 + e^-x), no overflow
        self.c = 1 if pos_weight is None else 1 + (pos_weight - 1) * t
        return (1 - t) * x + self.c * self.softplus_neg

    def backward(self, gy: Any) -> Any:
        x, t, pw, needs = self.x, self.t, self.pw, self.needs_input_grad
        sig_neg = fused_sigmoid.forward(self.be, -x)  # sigma(-x) = 1 - sigma(x)
        gx = gy * ((1 - t) - self.c * sig_neg) if needs[0] else None
        gt = None
        if needs[1]:
            gt = gy * (-x + (0 if pw is None else (pw - 1) * self.softplus_neg))
        gpw = gy * t * self.softplus_neg if pw is not None and needs[2] else None
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
    op = "binary_cross_entropy_with_logits"
    input, target = _elementwise_inputs(op, input, target, reduction)
    pw = () if pos_weight is None else (as_tensor(pos_weight, input),)
    return _weighted(BCEWithLogits.apply(input, target, *pw), weight, reduction)


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
    input, target = _class_inputs("cross_entropy", input, target, weight, reduction, "logits")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    if is_floating(target.dtype):
        if target.shape != input.shape:
            raise ValueError(
                f"cross_entropy: target has dtype {target.dtype} and shape {target.shape}: "
                f"class labels must be integers (convert them with .long()), and class "
                f"probabilities must have the input's shape {input.shape}"
            )
        return _soft_cross_entropy(input, target, weight, reduction, label_smoothing)
    spec = fused_ce.Spec(None, int(ignore_index), reduction, float(label_smoothing))
    return _label_loss("cross_entropy", input, target, weight, spec)


def _label_loss(op: str, input: Tensor, target: Tensor, weight: Any, spec: fused_ce.Spec) -> Tensor:
    """The loss at class labels as one fused op (cross_entropy's, or nll_loss's where
    spec.log_probs), with the class weights checked and put into spec."""
    c, shape = _labels(op, input, target)
    w = _class_weight(op, weight, input, c)
    if w is not None:  # (a replace costs 3 us: not in the common case)
        spec = dataclasses.replace(spec, weight=w.array)
    loss = SoftmaxCrossEntropy.apply(_rows(input, c), target=target.array.reshape(-1), spec=spec)
    return reshape(loss, shape) if spec.reduction == "none" else loss


def _soft_cross_entropy(
    input: Tensor, target: Tensor, weight: Any, reduction: str, label_smoothing: float
) -> Tensor:
    """Cross-entropy against class probabilities of input's shape (composed; classes: dim 1)."""
    dim = 1 if input.ndim > 1 else 0
    c = input.shape[dim]
    if label_smoothing:
        target = target * (1 - label_smoothing) + label_smoothing / c
    logp = log_softmax(input, dim)
    w = _class_weight("cross_entropy", weight, input, c)
    if w is not None:  # (C, 1, ...): along dim 1 of (N, C, d...)
        logp = logp * reshape(w, (c,) + (1,) * (input.ndim - 2))
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
    """Negative log-likelihood of log-probabilities at class labels, shaped as cross_entropy's:
    input (N, C), (C,) or (N, C, d1, ...); target (N,), () or (N, d1, ...)."""
    op = "nll_loss"
    input, target = _class_inputs(op, input, target, weight, reduction, "log-probabilities")
    spec = fused_ce.Spec(None, int(ignore_index), reduction, log_probs=True)
    return _label_loss(op, input, target, weight, spec)
