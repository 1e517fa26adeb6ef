"""Stochastic gradient descent: momentum, dampening, Nesterov, weight decay (PyTorch's rule)."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from gnn.backend.fused import optim as fused_optim
from gnn.backend.fused.optim import DeviceClock, SGDArrays, SGDSpec
from gnn.optim.optimizer import FusedRule, check_range
from gnn.tensor import Tensor

# Specs are made per parameter per step on the per-parameter path: one per setting, cached.
_spec = functools.lru_cache(maxsize=256)(SGDSpec)


class SGD(FusedRule):
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

    def _fused(
        self,
        param: Tensor,
        grad: Any,
        state: dict[str, Any] | None,
        group: dict[str, Any],
        clock: DeviceClock | None,
        maximize: bool,
    ) -> None:
        """The rule (gnn/backend/fused/optim.py): the kernel where it applies, else reference."""
        spec = _spec(
            group["momentum"], group["dampening"], group["weight_decay"], group["nesterov"],
            maximize,
        )  # fmt: skip
        buf, new = None, False
        if spec.momentum:
            assert state is not None  # init_state gives every parameter state under momentum
            buf_t = state.get("momentum_buffer")
            if buf_t is None:  # the first step: the buffer becomes the step's direction
                buf_t = state["momentum_buffer"] = self.zeros_state(param)
                new = True
            buf = buf_t.array
        arrays = SGDArrays(param.array, grad, buf, new)
        if clock is None:  # the per-parameter path: the reference, on any backend
            fused_optim.sgd_reference(param.backend.xp, spec, arrays, group["lr"])
        else:
            fused_optim.sgd(param.backend, spec, arrays, group["lr"], clock)
