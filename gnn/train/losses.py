"""Keras-named losses for compile(): each takes (y_true, y_pred) and knows its fused logits form.

Keras semantics: y_pred holds probabilities (the model ends in sigmoid / softmax) unless
from_logits=True. When fit sees that the last layer's activation matches the loss, it calls
`from_logits_loss` on the pre-activation values instead, which is exact and numerically stable.
"""

from __future__ import annotations

from typing import Any

from gnn import functional as F
from gnn.tensor import Tensor

EPSILON = 1e-7  # Keras clips probabilities to [eps, 1 - eps] before taking logs


class Loss:
    """Base: name, the activation it can fuse with, and the task kind used for checks/metrics."""

    name = "loss"
    fused_activation: str | None = None
    kind = "regression"  # "binary", "categorical", "sparse" or "regression"

    def __init__(self, from_logits: bool = False) -> None:
        self.from_logits = bool(from_logits)

    def __call__(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        if self.from_logits:
            return self.from_logits_loss(y_true, y_pred)
        return self.probability_loss(y_true, y_pred)

    def probability_loss(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        raise NotImplementedError

    def from_logits_loss(self, y_true: Tensor, logits: Tensor) -> Tensor:
        raise NotImplementedError(f"{self.name} has no logits form")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(from_logits={self.from_logits})"


class BinaryCrossentropy(Loss):
    """Mean binary cross-entropy; targets 0/1 (or probabilities), one sigmoid output per target."""

    name = "binary_crossentropy"
    fused_activation = "sigmoid"
    kind = "binary"

    def probability_loss(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return F.binary_cross_entropy(F.clamp(y_pred, EPSILON, 1.0 - EPSILON), y_true)

    def from_logits_loss(self, y_true: Tensor, logits: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(logits, y_true)


class CategoricalCrossentropy(Loss):
    """Mean cross-entropy against one-hot (or soft) targets of shape (N, C)."""

    name = "categorical_crossentropy"
    fused_activation = "softmax"
    kind = "categorical"

    def probability_loss(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        logp = F.log(F.clamp(y_pred, EPSILON, 1.0))
        return -(y_true * logp).sum(-1).mean()

    def from_logits_loss(self, y_true: Tensor, logits: Tensor) -> Tensor:
        return -(y_true * F.log_softmax(logits, -1)).sum(-1).mean()


class SparseCategoricalCrossentropy(Loss):
    """Mean cross-entropy against integer class labels of shape (N,)."""

    name = "sparse_categorical_crossentropy"
    fused_activation = "softmax"
    kind = "sparse"

    def probability_loss(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return F.nll_loss(F.log(F.clamp(y_pred, EPSILON, 1.0)), y_true)

    def from_logits_loss(self, y_true: Tensor, logits: Tensor) -> Tensor:
        return F.cross_entropy(logits, y_true)


class MeanSquaredError(Loss):
    """Mean of (y_true - y_pred)^2 over all elements."""

    name = "mse"

    def probability_loss(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return F.mse_loss(y_pred, y_true)

    def from_logits_loss(self, y_true: Tensor, logits: Tensor) -> Tensor:
        return F.mse_loss(logits, y_true)  # no activation in between: the same loss


class MeanAbsoluteError(Loss):
    """Mean of |y_true - y_pred| over all elements."""

    name = "mae"

    def probability_loss(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return F.l1_loss(y_pred, y_true)

    def from_logits_loss(self, y_true: Tensor, logits: Tensor) -> Tensor:
        return F.l1_loss(logits, y_true)  # no activation in between: the same loss


LOSSES: dict[str, type[Loss]] = {
    "binary_crossentropy": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
}


class CallableLoss(Loss):
    """A user loss: a gnn.nn loss Module (called as module(y_pred, y_true), PyTorch order) or a
    plain function called as fn(y_true, y_pred) (Keras order)."""

    def __init__(self, fn: Any) -> None:
        super().__init__(from_logits=False)
        self.fn = fn
        self.name = getattr(fn, "__name__", type(fn).__name__)
        self._torch_order = hasattr(fn, "forward") and hasattr(fn, "parameters")

    def probability_loss(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return self.fn(y_pred, y_true) if self._torch_order else self.fn(y_true, y_pred)


def get_loss(loss: Any, from_logits: bool = False) -> Loss:
    """A Loss object from a Keras name, a Loss instance, or a callable."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str):
        cls = LOSSES.get(loss.lower())
        if cls is None:
            raise ValueError(f"compile: unknown loss {loss!r}; known: {', '.join(LOSSES)}")
        return cls(from_logits=from_logits)
    if callable(loss):
        return CallableLoss(loss)
    raise TypeError(
        f"compile: loss must be a name, a Loss or a callable, got {type(loss).__name__}"
    )
