"""Stochastic gradient descent: momentum, dampening, Nesterov, weight decay (PyTorch's rule)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

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
        *,
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
            nesterov=nesterov, maximize=maximize,
            foreach=foreach, fused=fused,
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

    supports_flat = True  # foreach/fused: one update over flat buffers (gnn/optim/_flat.py)
    counts_steps = False  # PyTorch's SGD keeps no step count

    def init_state(self, param: Tensor, group: dict[str, Any]) -> dict[str, Any] | None:
        # The momentum buffer starts as the first step's direction (set by update); without
        # momentum SGD keeps no state at all, as PyTorch's does.
        return {} if group["momentum"] else None

    def update(
        self, param: Tensor, grad: Any, state: dict[str, Any] | None, group: dict[str, Any]
    ) -> None:
        xp, x = param._be.xp, param.array
        lr, mom, wd = group["lr"], group["momentum"], group["weight_decay"]
        # d is the step direction; `owned` says d is a scratch array we may overwrite.
        if wd:
            d, owned = xp.multiply(x, wd), True
            d += grad
        else:
            d, owned = grad, False
        if mom:
            assert state is not None  # init_state gives every parameter state under momentum
            buf_t = state.get("momentum_buffer")
            if buf_t is None:
                buf = d.copy()
                state["momentum_buffer"] = Tensor._make(buf, param._be, False)
            else:
                buf = buf_t.array
                buf *= mom
                damp = group["dampening"]
                buf += xp.multiply(d, 1.0 - damp) if damp else d
            if group["nesterov"]:
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
