"""gnn.losses: the losses compile() takes, as keras.losses names them (or pass their names)."""

from gnn.train.losses import (
    BinaryCrossentropy,
    CategoricalCrossentropy,
    Loss,
    MeanAbsoluteError,
    MeanSquaredError,
    SparseCategoricalCrossentropy,
    get_loss,
)

get = get_loss  # keras.losses.get

__all__ = [
    "BinaryCrossentropy", "CategoricalCrossentropy", "Loss", "MeanAbsoluteError",
    "MeanSquaredError", "SparseCategoricalCrossentropy", "get",
]  # fmt: skip
