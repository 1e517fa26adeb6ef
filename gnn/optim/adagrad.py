"""Adagrad (PyTorch's rule: per-element step sizes from the sum of squared gradients)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gnn.optim._pytorch_state import pytorch_scalars
from gnn.optim.optimizer import Optimizer, check_range
from gnn.tensor import Tensor


class Adagrad(Optimizer):
    """sum += g^2; p -= lr / (1 + (step - 1) lr_decay) * g / (sqrt(sum) + eps).

    As in PyTorch, the state (step 0, sum = initial_accumulator_value) exists from construction.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        maximize: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value, eps=eps, maximize=maximize,
        )  # fmt: skip
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p] = self.init_state(p, group)

    def checked_state(self, state_dict: Any) -> tuple:
        """As Optimizer.checked_state, also taking PyTorch's 0-d tensor counters."""
        return super().checked_state(pytorch_scalars(state_dict, floats=()))

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        super()._check_hyperparameters(group)
        check_range("Adagrad", "lr_decay", group["lr_decay"], 0.0)
        check_range("Adagrad", "initial_accumulator_value", group["initial_accumulator_value"], 0)
        check_range("Adagrad", "eps", group["eps"], 0.0)

    def init_state(self, param: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        init = group["initial_accumulator_value"]
        return {
            "step": 0,
            "sum": Tensor.wrap(param.backend.xp.full_like(param.array, init), param.backend),
        }

    def _required_state(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("step", "sum")

    def update(
        self, param: Tensor, grad: Any, state: dict[str, Any] | None, group: dict[str, Any]
    ) -> None:
        assert state is not None  # init_state gives every parameter state, and step passes it
        be, x, wd = param.backend, param.array, group["weight_decay"]
        xp = be.xp
        if wd:
            grad = grad + wd * x
        clr = group["lr"]
        if group["lr_decay"]:  # a rate that decays with the step count
            if be.name != "cuda":
                clr /= 1.0 + (state["step"] - 1) * group["lr_decay"]
            else:  # the device's count (Optimizer.step_count); the rate in x's dtype, not float64
                step = self.step_count(param, state["step"])
                clr = (clr / (1.0 + (step - 1) * group["lr_decay"])).astype(x.dtype, copy=False)
        total = state["sum"].array
        total += grad * grad
        denom = xp.sqrt(total)
        denom += group["eps"]
        x -= clr * (grad / denom)
