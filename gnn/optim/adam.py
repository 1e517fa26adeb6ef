"""Adam and AdamW (PyTorch's update rules, bias correction, amsgrad and decoupled weight decay)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from gnn.optim.optimizer import Optimizer, check_range
from gnn.tensor import Tensor


class Adam(Optimizer):
    """Adam: m, v = running means of g and g*g; p -= lr * m_hat / (sqrt(v_hat) + eps).

    weight_decay adds weight_decay * p to the gradient (L2); AdamW decays p itself instead.
    """

    supports_flat = True  # foreach/fused: one update over flat buffers (gnn/optim/_flat.py)
    _decoupled = False

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        maximize: bool = False,
        *,
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr, betas=tuple(betas) if isinstance(betas, list) else betas, eps=eps,
            weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize,
            foreach=foreach, fused=fused,
        )  # fmt: skip
        super().__init__(params, defaults)

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        who = type(self).__name__
        super()._check_hyperparameters(group)
        check_range(who, "eps", group["eps"], 0.0)
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{who}: betas must be a pair (beta1, beta2), got {betas!r}")
        check_range(who, "betas[0]", betas[0], 0.0, 1.0)
        check_range(who, "betas[1]", betas[1], 0.0, 1.0)

    def _required_state(self, group: dict[str, Any]) -> tuple[str, ...]:
        keys = ("step", "exp_avg", "exp_avg_sq")
        return keys + ("max_exp_avg_sq",) if group.get("amsgrad") else keys

    def init_state(self, param: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        state = {
            "step": 0,
            "exp_avg": self.zeros_state(param),
            "exp_avg_sq": self.zeros_state(param),
        }
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = self.zeros_state(param)
        return state

    def update(
        self, param: Tensor, grad: Any, state: dict[str, Any], group: dict[str, Any]
    ) -> None:
        xp, x, step = param._be.xp, param.array, state["step"]
        lr, wd = group["lr"], group["weight_decay"]
        beta1, beta2 = group["betas"]
        m, v = state["exp_avg"].array, state["exp_avg_sq"].array
        if wd:
            if self._decoupled:
                x *= 1.0 - lr * wd
            else:
                decayed = xp.multiply(x, wd)
                decayed += grad
                grad = decayed
        tmp = xp.subtract(grad, m)  # m += (1 - beta1) * (g - m), PyTorch's lerp
        tmp *= 1.0 - beta1
        m += tmp
        xp.multiply(grad, grad, out=tmp)  # v = beta2 * v + (1 - beta2) * g * g
        tmp *= 1.0 - beta2
        v *= beta2
        v += tmp
        if group["amsgrad"]:
            vmax = state["max_exp_avg_sq"].array
            xp.maximum(vmax, v, out=vmax)
            v = vmax
        # Bias corrections are host floats from the host step count: no device sync.
        xp.sqrt(v, out=tmp)  # denom = sqrt(v) / sqrt(1 - beta2^t) + eps
        tmp /= math.sqrt(1.0 - beta2**step)
        tmp += group["eps"]
        xp.divide(m, tmp, out=tmp)
        tmp *= lr / (1.0 - beta1**step)
        x -= tmp


class AdamW(Adam):
    """Adam with decoupled weight decay: p *= 1 - lr * weight_decay before the Adam step."""

    _decoupled = True

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        maximize: bool = False,
        *,
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        super().__init__(
            params, lr, betas, eps, weight_decay, amsgrad, maximize, foreach=foreach, fused=fused
        )
