"""NAdam (PyTorch's rule: Adam with Nesterov momentum and Dozat's momentum schedule)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gnn.optim._pytorch_state import pytorch_scalars
from gnn.optim.optimizer import Optimizer, check_range
from gnn.tensor import Tensor


class NAdam(Optimizer):
    """Adam whose step mixes the current gradient and the momentum with the decaying schedule
    mu_t = beta1 (1 - 0.5 * 0.96^(t * momentum_decay)).

    weight_decay is L2 (added to g) unless decoupled_weight_decay, which shrinks p as AdamW does.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum_decay: float = 4e-3,
        decoupled_weight_decay: bool = False,
        maximize: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
            momentum_decay=momentum_decay, decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize,
        )  # fmt: skip
        super().__init__(params, defaults)

    def checked_state(self, state_dict: Any) -> tuple:
        """As Optimizer.checked_state, also taking PyTorch's 0-d tensor counters."""
        return super().checked_state(pytorch_scalars(state_dict, floats=("mu_product",)))

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        super()._check_hyperparameters(group)
        check_range("NAdam", "eps", group["eps"], 0.0)
        check_range("NAdam", "momentum_decay", group["momentum_decay"], 0.0)
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"NAdam: betas must be a pair (beta1, beta2), got {betas!r}")
        check_range("NAdam", "betas[0]", betas[0], 0.0, 1.0)
        check_range("NAdam", "betas[1]", betas[1], 0.0, 1.0)

    def _required_state(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("step", "mu_product", "exp_avg", "exp_avg_sq")

    def init_state(self, param: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        return {
            "step": 0,
            "mu_product": 1.0,
            "exp_avg": self.zeros_state(param),
            "exp_avg_sq": self.zeros_state(param),
        }

    def update(
        self, param: Tensor, grad: Any, state: dict[str, Any] | None, group: dict[str, Any]
    ) -> None:
        assert state is not None  # init_state gives every parameter state, and step passes it
        xp, x = param.backend.xp, param.array
        lr, eps, wd, psi = group["lr"], group["eps"], group["weight_decay"], group["momentum_decay"]
        beta1, beta2 = group["betas"]
        if wd:
            if group["decoupled_weight_decay"]:
                x *= 1.0 - lr * wd
            else:
                grad = grad + wd * x
        # The momentum schedule comes from the step count: host numbers on the CPU, device
        # numbers on a GPU, where the device keeps mu_product too (see Optimizer.step_count).
        on_device = self.scalars_on_device(param)
        step = state["step"] if on_device is None else on_device.step(state["step"])
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * psi))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * psi))
        if on_device is None:
            mu_product = state["mu_product"] * mu
            state["mu_product"] = mu_product
        else:
            mu_product = on_device.get("mu_product", state["mu_product"])
            mu_product *= mu
        bc2 = 1.0 - beta2**step
        grad_scale = lr * (1.0 - mu) / (1.0 - mu_product)
        m_scale = lr * mu_next / (1.0 - mu_product * mu_next)
        if on_device is not None:  # in x's dtype: a float64 number would make the arrays float64
            bc2, grad_scale, m_scale = (
                c.astype(x.dtype, copy=False) for c in (bc2, grad_scale, m_scale)
            )
        m, v = state["exp_avg"].array, state["exp_avg_sq"].array
        m += (1.0 - beta1) * (grad - m)
        v *= beta2
        v += (1.0 - beta2) * (grad * grad)
        denom = xp.sqrt(v / bc2)
        denom += eps
        x -= grad_scale * (grad / denom)
        x -= m_scale * (m / denom)
