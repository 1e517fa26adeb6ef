"""Keras's training calls as plain functions taking the model first: fit(model, x, y, ...).

For any gnn Module: a Model is used as it is, any other Module through the Model that wraps it
(made on first use and kept with the module, so compile then fit see the same settings). The
methods themselves live on gnn.train.model.Model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gnn.nn.module import Module
from gnn.train.callbacks import History
from gnn.train.compile_utils import OptimizerSpec
from gnn.train.model import as_model


def compile(model: Module, *args: Any, **kwargs: Any) -> None:
    """model.compile(...) for any Module (see Model.compile)."""
    as_model(model).compile(*args, **kwargs)


def fit(model: Module, *args: Any, **kwargs: Any) -> History:
    """model.fit(...) for any Module (see Model.fit)."""
    return as_model(model).fit(*args, **kwargs)


def evaluate(model: Module, *args: Any, **kwargs: Any) -> dict[str, float]:
    """model.evaluate(...) for any Module (see Model.evaluate)."""
    return as_model(model).evaluate(*args, **kwargs)


def predict(model: Module, *args: Any, **kwargs: Any) -> np.ndarray:
    """model.predict(...) for any Module (see Model.predict)."""
    return as_model(model).predict(*args, **kwargs)


def summary(model: Module, *args: Any, **kwargs: Any) -> str:
    """model.summary(...) for any Module (see Model.summary)."""
    return as_model(model).summary(*args, **kwargs)


__all__ = ["OptimizerSpec", "compile", "evaluate", "fit", "predict", "summary"]
