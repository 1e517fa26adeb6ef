"""Adadelta (PyTorch's rule: running averages of squared gradients and squared updates)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gnn.optim._pytorch_state import pytorch_scalars
from gnn.optim.optimizer import Optimizer, check_range
from gnn.tensor import Tensor


class Adadelta(Optimizer):
    """sq = rho sq + (1 - rho) g^2; delta = sqrt(acc + eps) / sqrt(sq + eps) * g;
    acc = rho acc + (1 - rho) delta^2; p -= lr * delta (weight_decay adds wd * p to g)."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        maximize: bool = False,
    ) -> None:
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def checked_state(self, state_dict: Any) -> tuple:
        """As Optimizer.checked_state, also taking PyTorch's 0-d tensor counters."""
        return super().checked_state(pytorch_scalars(state_dict, floats=()))

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        super()._check_hyperparameters(group)
        check_range("Adadelta", "rho", group["rho"], 0.0, 1.0, high_open=False)
        check_range("Adadelta", "eps", group["eps"], 0.0)

    def _required_state(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("step", "square_avg", "acc_delta")

    def init_state(self, param: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        return {
            "step": 0,
            "square_avg": self.zeros_state(param),
            "acc_delta": self.zeros_state(param),
        }

    def update(
        self, param: Tensor, grad: Any, state: dict[str, Any] | None, group: dict[str, Any]
    ) -> None:
        assert state is not None  # init_state gives every parameter state, and step passes it
        xp, x = param.backend.xp, param.array
        rho, eps, wd = group["rho"], group["eps"], group["weight_decay"]
        sq, acc = state["square_avg"].array, state["acc_delta"].array
        if wd:
            grad = grad + wd * x
        sq *= rho
        sq += (1.0 - rho) * (grad * grad)
        delta = xp.sqrt(acc + eps)
        delta /= xp.sqrt(sq + eps)
        delta *= grad
        acc *= rho
        acc += (1.0 - rho) * (delta * delta)
        delta *= group["lr"]
        x -= delta
