"""gnn.metrics: the metrics compile() takes (or pass their names: "accuracy", "mae", ...).

Each is fn(y_true, y_pred) -> (sum over the batch, count), so fit averages epochs exactly.
"""

from gnn.train.metrics import (
    binary_accuracy,
    categorical_accuracy,
    mean_absolute_error,
    mean_squared_error,
    sparse_categorical_accuracy,
)

mae = mean_absolute_error
mse = mean_squared_error

__all__ = [
    "binary_accuracy", "categorical_accuracy", "mae", "mean_absolute_error",
    "mean_squared_error", "mse", "sparse_categorical_accuracy",
]  # fmt: skip
