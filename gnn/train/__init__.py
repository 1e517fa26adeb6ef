"""gnn.train: Keras-style training (Model, Sequential), callbacks, losses, metrics and History.

`Model` carries compile / fit / evaluate / predict / summary (gnn/train/model.py); the same
calls exist as functions taking any Module first (gnn/train/keras.py). See docs/tutorial-keras.md.
"""

from gnn.train import metrics
from gnn.train.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    History,
    LambdaCallback,
    LearningRateScheduler,
    ModelCheckpoint,
    ProgbarLogger,
    ReduceLROnPlateau,
    TerminateOnNaN,
)
from gnn.train.compile_utils import OptimizerSpec
from gnn.train.keras import compile, evaluate, fit, predict, summary
from gnn.train.losses import (
    BinaryCrossentropy,
    CategoricalCrossentropy,
    Loss,
    MeanAbsoluteError,
    MeanSquaredError,
    SparseCategoricalCrossentropy,
)
from gnn.train.model import Model, Sequential

__all__ = [
    "BinaryCrossentropy", "CSVLogger", "Callback", "CategoricalCrossentropy", "EarlyStopping",
    "History", "LambdaCallback", "LearningRateScheduler", "Loss", "MeanAbsoluteError",
    "MeanSquaredError", "Model", "ModelCheckpoint", "OptimizerSpec", "ProgbarLogger",
    "ReduceLROnPlateau", "Sequential", "SparseCategoricalCrossentropy", "TerminateOnNaN",
    "compile", "evaluate", "fit", "metrics", "predict", "summary",
]  # fmt: skip
