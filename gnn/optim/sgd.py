"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay (PyTorch's rule)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gnn.config import no_grad
from gnn.optim.optimizer import Optimizer
from gnn.tensor import Tensor


class SGD(Optimizer):
    """p -= lr * (momentum buffer or gradient), with PyTorch's momentum and Nesterov updates."""

    def __init__(
        self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
        weight_decay: float = 0.0, nesterov: bool = False, maximize: bool = False,
    ) -> None:
        if momentum < 0:
            raise ValueError(f"SGD: momentum must be >= 0, got {momentum}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov needs momentum > 0 and dampening = 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov, maximize=maximize))

    @no_grad()
    def step(self) -> None:
        for g in self.param_groups:
            lr, mom, damp = g["lr"], g["momentum"], g["dampening"]
            wd, nesterov, maximize = g["weight_decay"], g["nesterov"], g["maximize"]
            for p in g["params"]:
                if p.grad is None:
                    continue
                d = p.grad.data
                if maximize:
                    d = -d
                if wd:
                    d = d + wd * p.data
                if mom:
                    state = self.state.setdefault(id(p), {})
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = Tensor._make(d.copy(), p._be, False)
                        state["momentum_buffer"] = buf
                    else:
                        buf.data *= mom
                        buf.data += (1 - damp) * d
                    d = d + mom * buf.data if nesterov else buf.data
                p.data -= lr * d
