"""RMSprop (PyTorch's rule: optional centering, momentum and L2 weight decay)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gnn.optim.optimizer import Optimizer, check_range
from gnn.tensor import Tensor


class RMSprop(Optimizer):
    """sq = alpha * sq + (1 - alpha) * g * g; p -= lr * g / (sqrt(sq) + eps).

    centered subtracts the square of the running mean of g inside the root; momentum keeps a buffer
    of g / (sqrt(...) + eps) and steps along it.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        maximize: bool = False,
        *,
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
            centered=centered, maximize=maximize,
            foreach=foreach, fused=fused,
        )  # fmt: skip
        super().__init__(params, defaults)

    supports_flat = True  # foreach/fused: one update over flat buffers (gnn/optim/_flat.py)

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        super()._check_hyperparameters(group)
        check_range("RMSprop", "eps", group["eps"], 0.0)
        check_range("RMSprop", "momentum", group["momentum"], 0.0)
        check_range("RMSprop", "alpha", group["alpha"], 0.0, 1.0, high_open=False)

    def _required_state(self, group: dict[str, Any]) -> tuple[str, ...]:
        keys = ("step", "square_avg")
        keys += ("momentum_buffer",) if group.get("momentum", 0) > 0 else ()
        return keys + ("grad_avg",) if group.get("centered") else keys

    def init_state(self, param: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        state = {"step": 0, "square_avg": self.zeros_state(param)}
        if group["momentum"] > 0:
            state["momentum_buffer"] = self.zeros_state(param)
        if group["centered"]:
            state["grad_avg"] = self.zeros_state(param)
        return state

    def update(
        self, param: Tensor, grad: Any, state: dict[str, Any], group: dict[str, Any]
    ) -> None:
        xp, x = param._be.xp, param.array
        lr, alpha, wd, mom = group["lr"], group["alpha"], group["weight_decay"], group["momentum"]
        if wd:
            decayed = xp.multiply(x, wd)
            decayed += grad
            grad = decayed
        sq = state["square_avg"].array
        tmp = xp.multiply(grad, grad)
        tmp *= 1.0 - alpha
        sq *= alpha
        sq += tmp
        if group["centered"]:
            ga = state["grad_avg"].array
            xp.subtract(grad, ga, out=tmp)  # ga += (1 - alpha) * (g - ga), a lerp
            tmp *= 1.0 - alpha
            ga += tmp
            xp.multiply(ga, ga, out=tmp)
            xp.subtract(sq, tmp, out=tmp)
            xp.sqrt(tmp, out=tmp)
        else:
            xp.sqrt(sq, out=tmp)
        tmp += group["eps"]
        xp.divide(grad, tmp, out=tmp)
        if mom > 0:
            buf = state["momentum_buffer"].array
            buf *= mom
            buf += tmp
            xp.multiply(buf, lr, out=tmp)
        else:
            tmp *= lr
        x -= tmp
