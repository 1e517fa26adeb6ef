"""gnn.optimizers: Keras's spellings, Adam(learning_rate=0.01), built once the weights exist.

Each returns an OptimizerSpec for compile(optimizer=...); other arguments go to the gnn.optim
class as it takes them (e.g. SGD(learning_rate=0.1, momentum=0.9)).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gnn.train.compile_utils import OptimizerSpec


def _spec(name: str, title: str) -> Callable[..., OptimizerSpec]:
    def make(learning_rate: float | None = None, **kwargs: Any) -> OptimizerSpec:
        if learning_rate is not None:
            kwargs["lr"] = learning_rate
        return OptimizerSpec(name, **kwargs)

    make.__name__ = make.__qualname__ = title
    make.__doc__ = f"{name} with Keras's learning_rate= (other arguments as gnn.optim takes them)."
    return make


Adam = _spec("adam", "Adam")
AdamW = _spec("adamw", "AdamW")
SGD = _spec("sgd", "SGD")
RMSprop = _spec("rmsprop", "RMSprop")

__all__ = ["SGD", "Adam", "AdamW", "OptimizerSpec", "RMSprop"]
