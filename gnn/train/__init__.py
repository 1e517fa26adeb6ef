"""gnn.train: Keras-style fit / evaluate / predict for any Module, callbacks, metrics and History.

Importing this package attaches compile/fit/evaluate/predict/summary to gnn.nn.Module as methods
(gnn.nn stays free of imports from this layer; see docs/tutorial-keras.md).
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
from gnn.train.keras import OptimizerSpec, attach, compile, evaluate, fit, predict, summary
from gnn.train.losses import (
    BinaryCrossentropy,
    CategoricalCrossentropy,
    Loss,
    MeanAbsoluteError,
    MeanSquaredError,
    SparseCategoricalCrossentropy,
)

attach()

__all__ = [
    "BinaryCrossentropy", "CSVLogger", "Callback", "CategoricalCrossentropy", "EarlyStopping",
    "History", "LambdaCallback", "LearningRateScheduler", "Loss", "MeanAbsoluteError",
    "MeanSquaredError", "ModelCheckpoint", "OptimizerSpec", "ProgbarLogger", "ReduceLROnPlateau",
    "SparseCategoricalCrossentropy", "TerminateOnNaN", "attach", "compile", "evaluate", "fit",
    "metrics", "predict", "summary",
]  # fmt: skip
