"""Stochastic gradient descent: momentum, dampening, Nesterov, weight decay (PyTorch's rule)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gnn.config import no_grad
from gnn.optim.optimizer import Optimizer, check_range
from gnn.tensor import Tensor


class SGD(Optimizer):
    """p -= lr * d, where d is the gradient (plus weight decay) or its momentum buffer.

    With momentum: buf = momentum * buf + (1 - dampening) * d (buf = d on the first step), then
    d = d + momentum * buf with nesterov, else d = buf. maximize ascends instead.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        maximize: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
            nesterov=nesterov, maximize=maximize,
        )  # fmt: skip
        super().__init__(params, defaults)

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        super()._check_hyperparameters(group)
        check_range("SGD", "momentum", group["momentum"], 0.0)
        check_range("SGD", "dampening", group["dampening"], 0.0, 1.0, high_open=False)
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                f"SGD: nesterov=True needs momentum > 0 and dampening = 0, got momentum="
                f"{group['momentum']}, dampening={group['dampening']}"
            )

    @no_grad()
    def _step(self) -> None:
        for g in self.param_groups:
            lr, mom, damp = g["lr"], g["momentum"], g["dampening"]
            wd, nesterov, maximize = g["weight_decay"], g["nesterov"], g["maximize"]
            for p in g["params"]:
                if p.grad is None:
                    continue
                xp, x, grad = p._be.xp, p.data, p.grad.data
                # d is the step direction; `owned` says d is a scratch array we may overwrite.
                owned = True
                if wd:
                    d = xp.multiply(x, wd)
                    if maximize:
                        d -= grad
                    else:
                        d += grad
                elif maximize:
                    d = xp.negative(grad)
                else:
                    d, owned = grad, False
                if mom:
                    state = self.state.setdefault(p, {})
                    buf_t = state.get("momentum_buffer")
                    if buf_t is None:
                        buf = d.copy()
                        state["momentum_buffer"] = Tensor._make(buf, p._be, False)
                    else:
                        buf = buf_t.data
                        buf *= mom
                        if damp:
                            buf += xp.multiply(d, 1.0 - damp)
                        else:
                            buf += d
                    if nesterov:
                        step_dir = xp.multiply(buf, mom)
                        step_dir += d
                        d, owned = step_dir, True
                    else:
                        d, owned = buf, False
                if owned:
                    d *= lr
                    x -= d
                else:
                    x -= xp.multiply(d, lr)
