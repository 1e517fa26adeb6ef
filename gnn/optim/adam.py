"""Adam and AdamW (PyTorch's update rules, bias correction, amsgrad and decoupled weight decay)."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from gnn.backend.fused import optim as fused_optim
from gnn.backend.fused.optim import AdamArrays, AdamSpec, DeviceClock
from gnn.optim.optimizer import FusedRule, check_range
from gnn.tensor import Tensor

# Specs are made per parameter per step on the per-parameter path: one per setting, cached.
_spec = functools.lru_cache(maxsize=256)(AdamSpec)


class Adam(FusedRule):
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

    def _fused(
        self,
        param: Tensor,
        grad: Any,
        state: dict[str, Any],
        group: dict[str, Any],
        clock: DeviceClock | None,
        maximize: bool,
    ) -> None:
        """The rule (gnn/backend/fused/optim.py): the kernel where it applies, else the reference.

        lr and the step count go as host numbers for the reference and through the clock (device
        memory, rewritten only on a change) for the kernel; on a GPU the reference (foreach=False)
        takes its step count from the device too (Optimizer.step_count).
        """
        beta1, beta2 = group["betas"]
        spec = _spec(
            beta1, beta2, group["eps"], group["weight_decay"], group["amsgrad"], self._decoupled,
            maximize,
        )  # fmt: skip
        vmax = state.get("max_exp_avg_sq")
        arrays = AdamArrays(
            param.array, grad, state["exp_avg"].array, state["exp_avg_sq"].array,
            None if vmax is None else vmax.array,
        )  # fmt: skip
        if clock is None:  # the per-parameter path: the reference, on any backend
            be, step = param.backend, state["step"]
            if be.name == "cuda":  # the device's count (Optimizer.step_count)
                step = self.step_count(param, step)
            fused_optim.adam_reference(be.xp, spec, arrays, group["lr"], step)
        else:
            fused_optim.adam(param.backend, spec, arrays, group["lr"], state["step"], clock)


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
