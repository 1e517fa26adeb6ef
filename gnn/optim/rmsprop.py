"""RMSprop (PyTorch's rule: optional centering, momentum and L2 weight decay)."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from gnn.backend.fused import optim as fused_optim
from gnn.backend.fused.optim import DeviceClock, RMSpropArrays, RMSpropSpec
from gnn.optim.optimizer import FusedRule, check_range
from gnn.tensor import Tensor

# Specs are made per parameter per step on the per-parameter path: one per setting, cached.
_spec = functools.lru_cache(maxsize=256)(RMSpropSpec)


class RMSprop(FusedRule):
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
        keys: tuple[str, ...] = ("step", "square_avg")
        keys += ("momentum_buffer",) if group.get("momentum", 0) > 0 else ()
        return keys + ("grad_avg",) if group.get("centered") else keys

    def init_state(self, param: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        state = {"step": 0, "square_avg": self.zeros_state(param)}
        if group["momentum"] > 0:
            state["momentum_buffer"] = self.zeros_state(param)
        if group["centered"]:
            state["grad_avg"] = self.zeros_state(param)
        return state

    def _fused(
        self,
        param: Tensor,
        grad: Any,
        state: dict[str, Any],
        group: dict[str, Any],
        clock: DeviceClock | None,
        maximize: bool,
    ) -> None:
        """The rule (gnn/backend/fused/optim.py): the kernel where it applies, else reference."""
        spec = _spec(
            group["alpha"], group["eps"], group["weight_decay"], group["momentum"],
            group["centered"], maximize,
        )  # fmt: skip
        ga, buf = state.get("grad_avg"), state.get("momentum_buffer")
        arrays = RMSpropArrays(
            param.array, grad, state["square_avg"].array, None if ga is None else ga.array,
            None if buf is None else buf.array,
        )  # fmt: skip
        if clock is None:  # the per-parameter path: the reference, on any backend
            fused_optim.rmsprop_reference(param.backend.xp, spec, arrays, group["lr"])
        else:
            fused_optim.rmsprop(param.backend, spec, arrays, group["lr"], clock)
