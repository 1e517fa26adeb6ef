"""Metrics for compile(metrics=[...]): each gives (batch sum, count), so epochs average exactly.

They read the arrays directly (array methods that NumPy and CuPy share): no graph, no op calls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gnn.tensor import Tensor

Metric = Callable[[Tensor, Tensor], tuple[float, int]]


def binary_accuracy(y_true: Tensor, y_pred: Tensor, threshold: float = 0.5) -> tuple[float, int]:
    """Share of outputs on the right side of `threshold` (y_pred are probabilities)."""
    hits = (y_pred.array > threshold) == (y_true.array > 0.5)
    return float(hits.sum()), int(hits.size)


def categorical_accuracy(y_true: Tensor, y_pred: Tensor) -> tuple[float, int]:
    """Share of rows whose largest output is at the one-hot target's position."""
    hits = y_pred.array.argmax(axis=-1) == y_true.array.argmax(axis=-1)
    return float(hits.sum()), int(hits.size)


def sparse_categorical_accuracy(y_true: Tensor, y_pred: Tensor) -> tuple[float, int]:
    """Share of rows whose largest output is at the integer label."""
    hits = y_pred.array.argmax(axis=-1) == y_true.array.reshape(-1)
    return float(hits.sum()), int(hits.size)


def mean_absolute_error(y_true: Tensor, y_pred: Tensor) -> tuple[float, int]:
    """Mean |y_true - y_pred| (as a sum and an element count)."""
    d = abs(y_pred.array - y_true.array.reshape(y_pred.shape))
    return float(d.sum()), int(d.size)


def mean_squared_error(y_true: Tensor, y_pred: Tensor) -> tuple[float, int]:
    """Mean (y_true - y_pred)^2 (as a sum and an element count)."""
    d = y_pred.array - y_true.array.reshape(y_pred.shape)
    return float((d * d).sum()), int(d.size)


METRICS: dict[str, Metric] = {
    "binary_accuracy": binary_accuracy,
    "categorical_accuracy": categorical_accuracy,
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
    "mae": mean_absolute_error,
    "mean_absolute_error": mean_absolute_error,
    "mse": mean_squared_error,
    "mean_squared_error": mean_squared_error,
}
KNOWN = ["accuracy", "acc", *METRICS]


def accuracy_for(loss_kind: str, output_width: int) -> Metric:
    """What "accuracy" means for a loss, as in Keras: binary, categorical or sparse."""
    if loss_kind == "categorical":
        return categorical_accuracy
    if loss_kind == "sparse":
        return sparse_categorical_accuracy
    if loss_kind == "binary" or output_width == 1:
        return binary_accuracy
    return categorical_accuracy


def get_metric(metric: Any, loss_kind: str, output_width: int) -> tuple[str, Metric]:
    """(name for the logs, function) from a Keras name or a callable fn(y_true, y_pred)."""
    if isinstance(metric, str):
        key = metric.lower()
        if key in ("accuracy", "acc"):
            return metric, accuracy_for(loss_kind, output_width)
        if key in METRICS:
            return metric, METRICS[key]
        raise ValueError(f"compile: unknown metric {metric!r}; known: {', '.join(KNOWN)}")
    if metric in METRICS.values():  # ours (gnn.metrics): already (sum, count)
        return metric.__name__, metric
    if callable(metric):
        name = getattr(metric, "__name__", type(metric).__name__)

        def wrapped(y_true: Tensor, y_pred: Tensor) -> tuple[float, int]:
            value = metric(y_true, y_pred)
            n = y_pred.shape[0] if y_pred.ndim else 1
            return float(value) * n, n  # a mean over the batch, weighted by its size

        return name, wrapped
    raise TypeError(f"compile: a metric must be a name or a callable, got {type(metric).__name__}")


def check_metric_name(metric: Any) -> None:
    """Raise at compile time for unknown metric names (the function is picked at fit time)."""
    if isinstance(metric, str) and metric.lower() not in KNOWN:
        raise ValueError(f"compile: unknown metric {metric!r}; known: {', '.join(KNOWN)}")
    if not isinstance(metric, str) and not callable(metric):
        raise TypeError(
            f"compile: a metric must be a name or a callable, got {type(metric).__name__}"
        )
