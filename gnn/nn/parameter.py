"""Parameter: a Tensor that a Module registers as trainable."""

from __future__ import annotations

from typing import Any

from gnn.tensor import Tensor


class Parameter(Tensor):
    """A leaf Tensor that requires grad by default and is found by Module.parameters()."""

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True) -> None:
        self.data = data if isinstance(data, Tensor) else Tensor(data)  # shared, not copied
        self.grad = None
        self._creator = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()
