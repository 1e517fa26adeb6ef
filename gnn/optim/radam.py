"""RAdam (PyTorch's rule: Adam with the variance of the adaptive step rectified early on)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from gnn.optim._device_scalars import in_dtype_of
from gnn.optim._pytorch_state import pytorch_scalars
from gnn.optim.optimizer import Optimizer, check_range
from gnn.tensor import Tensor


class RAdam(Optimizer):
    """Adam that takes plain momentum steps while the length of the approximated SMA, rho_t, is
    <= 5, and rectified adaptive steps after.

    weight_decay is L2 (added to g) unless decoupled_weight_decay, which shrinks p as AdamW does.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled_weight_decay: bool = False,
        maximize: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
            decoupled_weight_decay=decoupled_weight_decay, maximize=maximize,
        )  # fmt: skip
        super().__init__(params, defaults)

    def checked_state(self, state_dict: Any) -> tuple:
        """As Optimizer.checked_state, also taking PyTorch's 0-d tensor counters."""
        return super().checked_state(pytorch_scalars(state_dict, floats=()))

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        super()._check_hyperparameters(group)
        check_range("RAdam", "eps", group["eps"], 0.0)
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"RAdam: betas must be a pair (beta1, beta2), got {betas!r}")
        check_range("RAdam", "betas[0]", betas[0], 0.0, 1.0)
        check_range("RAdam", "betas[1]", betas[1], 0.0, 1.0)

    def _required_state(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("step", "exp_avg", "exp_avg_sq")

    def init_state(self, param: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        return {
            "step": 0,
            "exp_avg": self.zeros_state(param),
            "exp_avg_sq": self.zeros_state(param),
        }

    def update(
        self, param: Tensor, grad: Any, state: dict[str, Any] | None, group: dict[str, Any]
    ) -> None:
        assert state is not None  # init_state gives every parameter state, and step passes it
        be, x = param.backend, param.array
        xp = be.xp
        lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
        beta1, beta2 = group["betas"]
        rho_inf = 2.0 / (1.0 - beta2) - 1.0
        if wd:
            if group["decoupled_weight_decay"]:
                x *= 1.0 - lr * wd
            else:
                grad = grad + wd * x
        m, v = state["exp_avg"].array, state["exp_avg_sq"].array
        m += (1.0 - beta1) * (grad - m)
        v *= beta2
        v += (1.0 - beta2) * (grad * grad)
        # The step count is the device's on a GPU (see Optimizer.step_count), and so is rho_t.
        step = state["step"]
        if be.name == "cuda":
            step = self.step_count(param, step)
        bc1 = 1.0 - beta1**step
        bc2 = 1.0 - beta2**step
        rho_t = rho_inf - 2.0 * step * beta2**step / bc2
        if not isinstance(rho_t, float):  # device numbers: both steps, chosen on the device
            rect = (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
            m_hat = m / in_dtype_of(x, bc1)
            denom = xp.sqrt(v)
            denom += eps
            rectified = in_dtype_of(x, lr * xp.sqrt(xp.maximum(rect, 0.0) * bc2)) / denom
            x -= m_hat * xp.where(rho_t > 5.0, rectified, in_dtype_of(x, lr))
            return
        m_hat = m / bc1
        if rho_t > 5.0:  # the variance of the adaptive step is tractable: rectify it
            num = (rho_t - 4) * (rho_t - 2) * rho_inf
            rect = math.sqrt(num / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
            denom = xp.sqrt(v)
            denom += eps
            x -= (lr * rect * math.sqrt(bc2)) * (m_hat / denom)
        else:
            x -= lr * m_hat
