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
from gnn.ops._util import Configured, as_tensor
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


def _start(
    op: str, input: Any, target: Any, reduction: str, same_shape: bool = False
) -> tuple[Tensor, Tensor]:
    """The checks every loss begins with; the prediction must be a gnn Tensor (targets may be
    arrays or lists: they are converted onto its device), of the target's shape where the loss
    compares them element by element (same_shape)."""
    if reduction not in _REDUCE:
        raise ValueError(f"{op}: reduction must be one of {tuple(_REDUCE)}, got {reduction!r}")
    input, target = cast_inputs(op, input, target)
    if not isinstance(input, Tensor):
        raise TypeError(
            f"{op}: input must be a gnn Tensor, got a {type(input).__module__}."
            f"{type(input).__name__}; wrap it with gnn.tensor(...) (targets may be arrays)"
        )
    target = as_tensor(target, input)
    if same_shape and input.shape != target.shape:
        raise ValueError(
            f"{op}: input shape {input.shape} and target shape {target.shape} differ "
            "(broadcasting them is almost always a bug; reshape one to match)"
        )
    return input, target


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


def _weighted(loss: Tensor, weight: Any, reduction: str) -> Tensor:
    """The elementwise loss times weight (None: no weights), reduced."""
    return _REDUCE[reduction](loss if weight is None else loss * as_tensor(weight, loss))


def _label_rows(op: str, input: Tensor, target: Tensor, c: int) -> Tensor:
    """C scores `input` as (rows, C) after checking their class labels `target`: (C,) with a 0-d
    target as (1, C), (N, C) with (N,) as they are, (N, C, d1, ...) with (N, d1, ...) as
    (N * d..., C), the rows in the order of the labels' flat layout."""
    if target.dtype.kind not in "iu":
        raise TypeError(
            f"{op}: target must hold integer class labels, got {target.dtype}; "
            "convert them with .long()"
        )
    expected = () if input.ndim == 1 else (input.shape[0],) + input.shape[2:]
    if target.shape != expected:
        raise ValueError(
            f"{op}: input {input.shape} needs target of shape {expected}, got {target.shape}"
        )
    if c == 0:
        raise ValueError(f"{op}: input {input.shape} has no classes")
    if input.ndim > 2:  # classes last: (N, d..., C)
        input = permute(input, (0,) + tuple(range(2, input.ndim)) + (1,))
    return input if input.ndim == 2 else reshape(input, (-1, c))


@register()
def mse_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Mean squared error between input and target (same shape)."""
    input, target = _start("mse_loss", input, target, reduction, same_shape=True)
    diff = input - target
    return _REDUCE[reduction](diff * diff)


@register()
def l1_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Mean absolute error between input and target (same shape)."""
    input, target = _start("l1_loss", input, target, reduction, same_shape=True)
    return _REDUCE[reduction]((input - target).abs())


@register()
def binary_cross_entropy(
    input: Tensor, target: Any, weight: Any = None, reduction: str = "mean"
) -> Tensor:
    """BCE on probabilities in [0, 1]; logs are clamped at -100 as in PyTorch."""
    input, target = _start("binary_cross_entropy", input, target, reduction, True)
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
        gt = gy * (-x + (0 if pw is None else (pw - 1) * self.softplus_neg)) if needs[1] else None
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
    input, target = _start(op, input, target, reduction, same_shape=True)
    pw = () if pos_weight is None else (as_tensor(pos_weight, input),)
    return _weighted(BCEWithLogits.apply(input, target, *pw), weight, reduction)


class SoftmaxCrossEntropy(Configured):
    """Fused log-softmax + nll over (N, C) logits and (N,) labels; backward in one pass."""

    target: Any  # the (N,) labels array
    spec: fused_ce.Spec

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
    spec = fused_ce.Spec(None, int(ignore_index), reduction, float(label_smoothing))
    return _class_loss("cross_entropy", input, target, weight, spec)


def _class_loss(op: str, input: Any, target: Any, weight: Any, spec: fused_ce.Spec) -> Tensor:
    """cross_entropy's and nll_loss's one body (nll_loss's where spec.log_probs): floating scores
    against class labels as one fused op, or (cross_entropy) against class probabilities."""
    input, target = _start(op, input, target, spec.reduction)
    what = "log-probabilities" if spec.log_probs else "logits"
    if not is_floating(input.dtype):
        raise TypeError(
            f"{op}: input ({what}) must be floating point, got {input.dtype}; "
            "convert it with .float() (integer scores would be cast silently otherwise)"
        )
    if input.ndim == 0:
        raise ValueError(f"{op}: input must have a class dimension, got a 0-d tensor")
    for name, other in (("target", target), ("weight", weight)):
        if isinstance(other, Tensor) and other._be is not input._be:  # used by their data
            raise RuntimeError(
                f"{op}: inputs are on different devices ({input.device} and {other.device}, the "
                f"{name}); move them with .to(device) first"
            )
    if not 0.0 <= spec.label_smoothing <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be in [0, 1], got {spec.label_smoothing}")
    c = input.shape[0] if input.ndim == 1 else input.shape[1]  # the classes
    w = None if weight is None else as_tensor(weight, input)
    if w is not None and w.shape != (c,):
        raise ValueError(f"{op}: weight must have shape ({c},), got {tuple(w.shape)}")
    if not spec.log_probs and is_floating(target.dtype):
        if target.shape != input.shape:
            raise ValueError(
                f"{op}: target has dtype {target.dtype} and shape {target.shape}: "
                f"class labels must be integers (convert them with .long()), and class "
                f"probabilities must have the input's shape {input.shape}"
            )
        return _soft_cross_entropy(input, target, w, spec)
    rows = _label_rows(op, input, target, c)
    if w is not None:  # (a replace costs 1 us: not in the common case)
        spec = spec._replace(weight=w.array)
    loss = SoftmaxCrossEntropy.apply(rows, target=target.array.reshape(-1), spec=spec)
    return reshape(loss, target.shape) if spec.reduction == "none" else loss


def _soft_cross_entropy(input: Tensor, target: Tensor, w: Any, spec: fused_ce.Spec) -> Tensor:
    """Cross-entropy against class probabilities of input's shape (composed; classes: dim 1),
    with class weights w (C,) or None."""
    dim = 1 if input.ndim > 1 else 0
    c, eps = input.shape[dim], spec.label_smoothing
    if eps:
        target = target * (1 - eps) + eps / c
    logp = log_softmax(input, dim)
    if w is not None:  # (C, 1, ...): along dim 1 of (N, C, d...)
        logp = logp * reshape(w, (c,) + (1,) * (input.ndim - 2))
    return _REDUCE[spec.reduction](-_sum(logp * target, dim))


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
    spec = fused_ce.Spec(None, int(ignore_index), reduction, log_probs=True)
    return _class_loss("nll_loss", input, target, weight, spec)
