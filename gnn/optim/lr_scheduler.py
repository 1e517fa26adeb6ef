"""Learning-rate schedules: StepLR, ExponentialLR, CosineAnnealingLR, LambdaLR, ReduceLROnPlateau.

Call `scheduler.step()` once per epoch after `optimizer.step()` (ReduceLROnPlateau: `step(metric)`).
The epoch-indexed schedules use closed forms of PyTorch's recursions, so they give PyTorch's values
without drift and can jump to any epoch.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

from gnn.optim.optimizer import Optimizer, check_range


class LRScheduler:
    """Base: sets every group's lr from base_lrs and last_epoch; step() advances one epoch."""

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        if not isinstance(optimizer, Optimizer):
            who, got = type(self).__name__, type(optimizer).__name__
            raise TypeError(f"{who}: expected a gnn.optim Optimizer, got {got}")
        self.optimizer = optimizer
        if last_epoch == -1:
            for g in optimizer.param_groups:
                g.setdefault("initial_lr", g["lr"])
        else:
            for i, g in enumerate(optimizer.param_groups):
                if "initial_lr" not in g:
                    raise KeyError(
                        f"{type(self).__name__}: param group {i} has no 'initial_lr' "
                        f"(needed to resume from last_epoch={last_epoch})"
                    )
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._step_count = 0
        self.step()

    def get_lr(self) -> list[float]:
        """The learning rate of every group at epoch self.last_epoch."""
        raise NotImplementedError

    def step(self, epoch: int | None = None) -> None:
        """Advance one epoch (or jump to `epoch`) and write the new lrs into the optimizer."""
        self._step_count += 1
        self.last_epoch = self.last_epoch + 1 if epoch is None else int(epoch)
        for g, lr in zip(self.optimizer.param_groups, self.get_lr()):
            g["lr"] = lr
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        """The lrs the last step() set, one per param group."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """Every attribute but the optimizer (and functions, which cannot be saved)."""
        return {k: v for k, v in self.__dict__.items() if k != "optimizer" and not callable(v)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore attributes saved by state_dict() (keys this scheduler lacks are ignored).

        The saved state is checked first (every key present, each value of the type and length
        the scheduler keeps, counters and lrs in range), so nothing that loads fails at step().
        """
        for k, v in self.checked_state(state_dict, partial=True).items():
            setattr(self, k, v)

    def checked_state(self, state_dict: Any, partial: bool = False) -> dict[str, Any]:
        """The entries of a saved state this scheduler takes, checked; raises ValueError.

        partial=True lets keys be missing (they keep their values, as before); a checkpoint
        file is checked with partial=False: a saved state lacking a key is malformed.
        """
        who = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, dict):
            raise ValueError(f"{who}: the state must be a dict, got {type(state_dict).__name__}")
        own = self.state_dict()
        missing = [k for k in own if k not in state_dict]
        if missing and not partial:
            raise ValueError(f"{who}: the saved state lacks {', '.join(map(repr, missing))}")
        new = {k: state_dict[k] for k in own if k in state_dict}
        for k, v in new.items():
            _check_like(who, k, v, own[k])
        for k in ("base_lrs", "_last_lr", "min_lrs"):
            for lr in new.get(k) or []:
                if not 0 <= lr < math.inf:
                    raise ValueError(f"{who}: {k} must hold finite values >= 0, got {new[k]!r}")
        if new.get("last_epoch", 0) < -1:
            raise ValueError(f"{who}: last_epoch must be >= -1, got {new['last_epoch']!r}")
        if "factor" in new and not 0 < new["factor"] < 1:
            raise ValueError(f"{who}: factor must be in (0, 1), got {new['factor']!r}")
        for k in ("eps", "threshold", "eta_min", "gamma"):
            if k in new and not 0 <= new[k] < math.inf:
                raise ValueError(f"{who}: {k} must be finite and >= 0, got {new[k]!r}")
        for k in ("step_size", "T_max"):
            if k in new and new[k] < 1:
                raise ValueError(f"{who}: {k} must be >= 1, got {new[k]!r}")
        if type(self).get_lr is not LRScheduler.get_lr:
            # the lrs the next step() computes, on a copy: a state that loads must step
            trial = copy.copy(self)  # the state as it would be after loading
            trial.__dict__.update(new)
            try:
                lrs = trial.get_lr()
            except (ArithmeticError, TypeError, ValueError, IndexError) as e:
                raise ValueError(f"{who}: the saved state gives no learning rate ({e})") from None
            if not all(isinstance(lr, (int, float)) and 0 <= lr < math.inf for lr in lrs):
                raise ValueError(f"{who}: the saved state gives learning rates {lrs}")
        return new

    def __repr__(self) -> str:
        return f"{type(self).__name__}(last_epoch={self.last_epoch}, last_lr={self._last_lr})"


class LambdaLR(LRScheduler):
    """lr = base_lr * lr_lambda(epoch); one function for all groups, or a list of one per group."""

    def __init__(
        self,
        optimizer: Optimizer,
        lr_lambda: Callable[[int], float] | list[Callable[[int], float]],
        last_epoch: int = -1,
    ) -> None:
        n = len(optimizer.param_groups)
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != n:
                raise ValueError(
                    f"LambdaLR: expected {n} lr_lambdas (one per group), got {len(lr_lambda)}"
                )
            self.lr_lambdas = list(lr_lambda)
        else:
            self.lr_lambdas = [lr_lambda] * n
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [base * fn(self.last_epoch) for base, fn in zip(self.base_lrs, self.lr_lambdas)]

    def state_dict(self) -> dict[str, Any]:
        """As the base, without the lr_lambdas (functions are not saved, as in PyTorch)."""
        return {k: v for k, v in super().state_dict().items() if k != "lr_lambdas"}


class StepLR(LRScheduler):
    """lr = base_lr * gamma ** (epoch // step_size)."""

    def __init__(
        self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1
    ) -> None:
        if not isinstance(step_size, int) or step_size < 1:
            raise ValueError(f"StepLR: step_size must be an integer >= 1, got {step_size!r}")
        check_range("StepLR", "gamma", gamma, 0.0, low_open=True)
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [base * self.gamma ** (self.last_epoch // self.step_size) for base in self.base_lrs]


class ExponentialLR(LRScheduler):
    """lr = base_lr * gamma ** epoch."""

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1) -> None:
        check_range("ExponentialLR", "gamma", gamma, 0.0, low_open=True)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [base * self.gamma**self.last_epoch for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2.

    Past T_max the cosine keeps going (the lr rises again), as PyTorch's recursion does.
    """

    def __init__(
        self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1
    ) -> None:
        if not isinstance(T_max, int) or T_max < 1:
            raise ValueError(f"CosineAnnealingLR: T_max must be an integer >= 1, got {T_max!r}")
        check_range("CosineAnnealingLR", "eta_min", eta_min, 0.0)
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        c = (1.0 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2.0
        return [self.eta_min + (base - self.eta_min) * c for base in self.base_lrs]


class ReduceLROnPlateau(LRScheduler):
    """Multiply every group's lr by `factor` when `metric` has not improved for `patience` epochs.

    mode "min" (lower is better) or "max"; improvement needs to beat the best by `threshold`
    (relative: best * (1 -/+ threshold), or absolute: best -/+ threshold). After a cut, `cooldown`
    epochs pass before bad epochs count again; no lr falls below min_lr, and a cut smaller than
    eps is skipped.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float | list[float] = 0.0,
        eps: float = 1e-8,
    ) -> None:
        who = "ReduceLROnPlateau"
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"{who}: expected a gnn.optim Optimizer, got {type(optimizer).__name__}"
            )
        if mode not in ("min", "max"):
            raise ValueError(f"{who}: mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(
                f"{who}: threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}"
            )
        check_range(who, "factor", factor, 0.0, 1.0, low_open=True)
        check_range(who, "threshold", threshold, 0.0)
        check_range(who, "eps", eps, 0.0)
        for name, value in (("patience", patience), ("cooldown", cooldown)):
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{who}: {name} must be an integer >= 0, got {value!r}")
        n = len(optimizer.param_groups)
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != n:
                raise ValueError(
                    f"{who}: expected {n} min_lr values (one per group), got {len(min_lr)}"
                )
            self.min_lrs = [float(v) for v in min_lr]
        else:
            self.min_lrs = [float(min_lr)] * n
        for v in self.min_lrs:
            check_range(who, "min_lr", v, 0.0)
        self.optimizer = optimizer
        self.mode, self.factor, self.patience = mode, float(factor), patience
        self.threshold, self.threshold_mode = threshold, threshold_mode
        self.cooldown, self.eps = cooldown, eps
        self.cooldown_counter = 0
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self.best = self.mode_worse
        self.num_bad_epochs = 0
        self.last_epoch = 0
        self._last_lr = [g["lr"] for g in optimizer.param_groups]

    def is_better(self, a: float, best: float) -> bool:
        """Whether metric value a improves on best by more than the threshold."""
        if self.mode == "min" and self.threshold_mode == "rel":
            return a < best * (1.0 - self.threshold)
        if self.mode == "min":
            return a < best - self.threshold
        if self.threshold_mode == "rel":
            return a > best * (1.0 + self.threshold)
        return a > best + self.threshold

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    # metrics first, as PyTorch's ReduceLROnPlateau.step takes it: an API that departs from the
    # base's step(epoch) on purpose, hence the ignore
    def step(self, metrics: Any, epoch: int | None = None) -> None:  # type: ignore[override]
        """Record this epoch's metric (a number or a one-element Tensor) and maybe cut the lr."""
        current = float(metrics)  # the one host read a plateau test cannot avoid
        self.last_epoch = self.last_epoch + 1 if epoch is None else int(epoch)
        if self.is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs in cooldown do not count
        if self.num_bad_epochs > self.patience:
            for g, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
                old = float(g["lr"])
                new = max(old * self.factor, min_lr)
                if old - new > self.eps:
                    g["lr"] = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def get_lr(self) -> list[float]:
        return list(self._last_lr)


__all__ = [
    "CosineAnnealingLR", "ExponentialLR", "LRScheduler", "LambdaLR", "ReduceLROnPlateau", "StepLR",
]  # fmt: skip


def _check_like(who: str, key: str, value: Any, like: Any) -> None:
    """Raise ValueError unless a saved value has the kind of the scheduler's own `like`."""

    def bad(want: str) -> ValueError:
        return ValueError(f"{who}: {key} must be {want}, got {value!r}")

    if isinstance(like, bool):
        if not isinstance(value, bool):
            raise bad("true or false")
    elif isinstance(like, int):
        if not isinstance(value, int) or isinstance(value, bool):
            raise bad("an integer")
        if value < 0 and key != "last_epoch":
            raise bad("an integer >= 0")
    elif isinstance(like, float):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
            raise bad("a number")
    elif isinstance(like, str):
        if key == "mode" and value not in ("min", "max"):
            raise bad("'min' or 'max'")
        if key == "threshold_mode" and value not in ("rel", "abs"):
            raise bad("'rel' or 'abs'")
        if not isinstance(value, str):
            raise bad("a string")
    elif isinstance(like, (list, tuple)):
        if not isinstance(value, (list, tuple)) or len(value) != len(like):
            raise bad(f"a list of {len(like)} (one per param group)")
        for i, (v, o) in enumerate(zip(value, like)):
            _check_like(who, f"{key}[{i}]", v, o)
