"""Callbacks for fit(): History, EarlyStopping, ModelCheckpoint, CSVLogger, ReduceLROnPlateau,
LambdaCallback, TerminateOnNaN, LearningRateScheduler, and what fit reports through them: the
progress display and the message when a NaN loss stops training."""

from __future__ import annotations

import csv
import io
import math
import os
import string
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any, TypeGuard

from gnn.tensor import Tensor

PLOT_HINT = "pip install 'gnn[plot]' (or pip install matplotlib)"


class Callback:
    """Base class: override the hooks you need; `self.model` and `self.params` are set by fit."""

    # True for callbacks that write files or print: under mpiexec only rank 0 runs them.
    rank_zero_only = False
    # True for callbacks that change the learning rate: fit then logs "lr" each epoch.
    sets_learning_rate = False

    def __init__(self) -> None:
        self.model: Any = None
        self.params: dict[str, Any] = {}

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def on_train_begin(self, logs: dict | None = None) -> None: ...
    def on_train_end(self, logs: dict | None = None) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None: ...
    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None: ...
    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None: ...
    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None: ...

    def on_nonfinite_loss(self, epoch: int, batch: int, loss: float) -> None:
        """fit stops: this batch's loss is NaN or infinite (its update was not made)."""


class CallbackList:
    """Calls each hook on every callback, in order."""

    def __init__(
        self, callbacks: list[Callback], model: Any = None, params: dict | None = None
    ) -> None:
        self.callbacks = list(callbacks)
        self.log_lr = False  # whether fit logs the learning rate ("lr") each epoch
        for cb in self.callbacks:
            if model is not None:
                cb.set_model(model)
            if params is not None:
                cb.set_params(dict(params))

    def __getattr__(self, hook: str) -> Callable[..., None]:
        def call(*args: Any) -> None:
            for cb in self.callbacks:
                getattr(cb, hook)(*args)

        return call


# ---- History -------------------------------------------------------------------------------------


class History(Callback):
    """What fit returns: `history["loss"]`, `history["val_accuracy"]`, ... one value per epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.epoch = []
        self.history = {}

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.record(epoch, logs or {})

    def record(self, epoch: int, logs: dict) -> None:
        """Append one epoch's numbers."""
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(float(v))

    def on_nonfinite_loss(self, epoch: int, batch: int, loss: float) -> None:
        # one more entry: the bad loss, NaN for every other quantity (the lists stay aligned)
        names = [*self.params.get("metrics", ()), *self.history]
        self.record(epoch, {k: math.nan for k in names} | {"loss": loss})

    def plot(self, path: str | os.PathLike) -> str:
        """Write the training curves to a PNG (one panel per quantity, train and validation)."""
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError as exc:
            raise ImportError(f"History.plot needs matplotlib: {PLOT_HINT}") from exc
        if not self.history:
            raise ValueError("History.plot: nothing to plot (fit has not recorded any epoch)")
        names = [k for k in self.history if not k.startswith("val_") and k != "lr"]
        names += [k[4:] for k in self.history if k.startswith("val_") and k[4:] not in names]
        fig = Figure(figsize=(5 * len(names), 3.6))
        FigureCanvasAgg(fig)
        epochs = [e + 1 for e in self.epoch]
        for i, name in enumerate(names, 1):
            ax = fig.add_subplot(1, len(names), i)
            for key, label in ((name, "train"), (f"val_{name}", "validation")):
                if key in self.history:
                    values = self.history[key]
                    ax.plot(epochs[: len(values)], values, label=f"{label} {name}")
            ax.set_xlabel("epoch")
            ax.set_title(name)
            ax.grid(alpha=0.3)
            ax.legend()
        fig.tight_layout()
        fig.savefig(os.fspath(path), dpi=100)
        return os.fspath(path)


# ---- monitoring helpers --------------------------------------------------------------------------


def _mode_for(monitor: str, mode: str, who: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{who}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    return "max" if ("acc" in monitor or monitor.endswith("auc")) else "min"


def _finite(value: Any) -> TypeGuard[float]:
    """A number, not None and not NaN or infinite (True tells mypy it is a float)."""
    return value is not None and math.isfinite(float(value))


class _Monitor:
    """Tracks the best value of one logged quantity (non-finite values never count as best)."""

    def __init__(self, monitor: str, mode: str, min_delta: float, who: str) -> None:
        self.monitor = monitor
        self.mode = _mode_for(monitor, mode, who)
        self.min_delta = abs(min_delta)
        self.who = who
        self.best: float | None = None
        self._warned = False

    def value(self, logs: dict | None) -> float | None:
        logs = logs or {}
        if self.monitor not in logs:
            if not self._warned:
                warnings.warn(
                    f"{self.who}: monitored quantity {self.monitor!r} is not in the logs "
                    f"(available: {', '.join(sorted(logs)) or 'none'}); this callback does nothing",
                    stacklevel=3,
                )
                self._warned = True
            return None
        return float(logs[self.monitor])

    def improved(self, value: float | None) -> bool:
        if not _finite(value):
            return False
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


def _snapshot(model: Any) -> dict[str, Tensor]:
    """A device-side copy of every parameter and buffer."""
    return {k: v.clone() for k, v in model.state_dict().items()}


# ---- the callbacks -------------------------------------------------------------------------------


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved for `patience` epochs.

    With restore_best_weights=True the best epoch's weights are put back whenever training ends:
    stopped early, epochs run out, or a NaN loss stopped it.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0.0,
        patience: int = 0,
        verbose: int = 0,
        mode: str = "auto",
        baseline: float | None = None,
        restore_best_weights: bool = False,
        start_from_epoch: int = 0,
    ) -> None:
        super().__init__()
        if patience < 0:
            raise ValueError(f"EarlyStopping: patience must be >= 0, got {patience}")
        self.tracker = _Monitor(monitor, mode, min_delta, "EarlyStopping")
        self.monitor, self.patience, self.verbose = monitor, patience, verbose
        self.baseline, self.restore_best_weights = baseline, restore_best_weights
        self.start_from_epoch = start_from_epoch
        self.best_weights: dict[str, Tensor] | None = None
        self.best_epoch = -1
        self.stopped_epoch = -1
        self.wait = 0

    @property
    def best(self) -> float | None:
        return self.tracker.best

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.tracker.best = None
        if self.baseline is not None:
            self.tracker.best = float(self.baseline)
        self.best_weights, self.best_epoch, self.stopped_epoch, self.wait = None, -1, -1, 0

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = self.tracker.value(logs)
        if value is None or epoch < self.start_from_epoch:
            return
        if self.tracker.improved(value):
            self.tracker.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = _snapshot(self.model)
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.stopped_epoch >= 0 and self.verbose:
            print(
                f"EarlyStopping: stopped after epoch {self.stopped_epoch + 1}; "
                f"best {self.monitor} {self.best:.4g} at epoch {self.best_epoch + 1}"
            )
        if self.restore_best_weights and self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)
            if self.verbose:
                print(f"EarlyStopping: restored the weights of epoch {self.best_epoch + 1}")


class ModelCheckpoint(Callback):
    """Save the weights (safetensors, written atomically) after each epoch or only when best.

    `filepath` may hold format fields from the logs, e.g.
    "ckpt-{epoch:02d}-{val_loss:.3f}.safetensors".
    A non-finite monitored value is never saved as best.
    """

    rank_zero_only = True

    def __init__(
        self,
        filepath: str | os.PathLike,
        monitor: str = "val_loss",
        verbose: int = 0,
        save_best_only: bool = False,
        mode: str = "auto",
    ) -> None:
        super().__init__()
        self.filepath = os.fspath(filepath)
        self.tracker = _Monitor(monitor, mode, 0.0, "ModelCheckpoint")
        self.monitor, self.verbose, self.save_best_only = monitor, verbose, save_best_only
        self.saved: list[str] = []

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.tracker.best = None
        self._check_fields()

    def _check_fields(self) -> None:
        """Fail before training when `filepath` names a quantity fit will not log (e.g.
        {val_loss} without validation data), rather than after the first epoch's work."""
        logged = (self.params or {}).get("metrics")
        if logged is None:  # not run by fit: nothing to check against
            return
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(self.filepath) if f is not None]
        except ValueError as e:
            raise ValueError(
                f"ModelCheckpoint: filepath {self.filepath!r} is malformed ({e})"
            ) from None
        known = {"epoch", *logged}
        for field in fields:
            name = field.split(".")[0].split("[")[0]
            if name not in known:
                hint = (
                    " (pass validation_data or validation_split to fit)"
                    if name.startswith("val_")
                    else ""
                )
                raise ValueError(
                    f"ModelCheckpoint: filepath {self.filepath!r} uses {{{field}}}, which fit "
                    f"does not log{hint}; it logs: {', '.join(sorted(known))}"
                )

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        path = self.filepath.format(epoch=epoch + 1, **logs)
        if self.save_best_only:
            value = self.tracker.value(logs)
            if not self.tracker.improved(value):
                return
            self.tracker.best = value
        elif not all(_finite(v) for v in logs.values()):
            return  # a NaN model is not worth a file
        save_weights(self.model, path)
        self.saved.append(path)
        if self.verbose:
            print(f"ModelCheckpoint: epoch {epoch + 1}: saved {path}")


def save_weights(model: Any, path: str) -> None:
    """Write the weights to `path` in safetensors, atomically (temp file, then rename).

    A gnn.Model wrapping a module saves that module's state dict (its own key names).
    """
    from gnn.io import save

    save(getattr(model, "body", model).state_dict(), path)


class CSVLogger(Callback):
    """Append one CSV row per epoch: epoch, then every logged quantity."""

    rank_zero_only = True

    def __init__(
        self, filename: str | os.PathLike, separator: str = ",", append: bool = False
    ) -> None:
        super().__init__()
        self.filename, self.separator, self.append = os.fspath(filename), separator, append
        self._file: Any = None
        self._writer: Any = None
        self._keys: list[str] | None = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        exists = (
            self.append and os.path.exists(self.filename) and os.path.getsize(self.filename) > 0
        )
        self._file = open(self.filename, "a" if self.append else "w", newline="")
        self._keys = None
        self._has_header = exists

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        if self._keys is None:
            self._keys = sorted(logs)
            self._writer = csv.writer(self._file, delimiter=self.separator)
            if not self._has_header:
                self._writer.writerow(["epoch", *self._keys])
        self._writer.writerow([epoch, *(logs.get(k, "") for k in self._keys)])
        self._file.flush()

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by `factor` when `monitor` stalls for `patience` epochs."""

    sets_learning_rate = True

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        verbose: int = 0,
        mode: str = "auto",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0.0 < factor < 1.0:
            raise ValueError(f"ReduceLROnPlateau: factor must be in (0, 1), got {factor}")
        self.tracker = _Monitor(monitor, mode, min_delta, "ReduceLROnPlateau")
        self.factor, self.patience, self.verbose = factor, patience, verbose
        self.cooldown, self.min_lr = cooldown, min_lr
        self.wait = 0
        self.cooldown_counter = 0

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.tracker.best, self.wait, self.cooldown_counter = None, 0, 0

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = self.tracker.value(logs)
        if value is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self.tracker.improved(value):
            self.tracker.best, self.wait = value, 0
            return
        if self.cooldown_counter > 0:
            return
        self.wait += 1
        if self.wait >= self.patience:
            for group in self.model.optimizer.param_groups:
                old = group["lr"]
                new = max(old * self.factor, self.min_lr)
                if old - new > 1e-12:
                    group["lr"] = new
                    if self.verbose:
                        print(
                            f"ReduceLROnPlateau: epoch {epoch + 1}: "
                            f"learning rate {old:.3g} -> {new:.3g}"
                        )
            self.cooldown_counter, self.wait = self.cooldown, 0


class LearningRateScheduler(Callback):
    """Set the learning rate at each epoch's start to schedule(epoch, lr)."""

    sets_learning_rate = True

    def __init__(self, schedule: Callable[[int, float], float], verbose: int = 0) -> None:
        super().__init__()
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        groups = self.model.optimizer.param_groups
        lr = float(self.schedule(epoch, groups[0]["lr"]))
        for g in groups:
            g["lr"] = lr


class LambdaCallback(Callback):
    """A callback from plain functions: on_epoch_end=lambda epoch, logs: ..., and so on."""

    def __init__(self, **hooks: Callable[..., None]) -> None:
        super().__init__()
        allowed = {
            "on_train_begin",
            "on_train_end",
            "on_epoch_begin",
            "on_epoch_end",
            "on_train_batch_begin",
            "on_train_batch_end",
            "on_batch_begin",
            "on_batch_end",
        }
        for name, fn in hooks.items():
            if name not in allowed:
                raise ValueError(
                    f"LambdaCallback: unknown hook {name!r}; known: {', '.join(sorted(allowed))}"
                )
            name = name.replace("on_batch", "on_train_batch")
            setattr(self, name, fn)


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch loss is NaN or infinite (fit also does so by default)."""

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"TerminateOnNaN: batch {batch}: invalid loss, terminating training")
            self.model.stop_training = True


class NonFiniteLossReport(Callback):
    """Says on stderr (whatever verbose is) where a NaN or infinite loss stopped fit, and why."""

    def on_nonfinite_loss(self, epoch: int, batch: int, loss: float) -> None:
        print(
            f"fit: stopped at epoch {epoch + 1}, batch {batch + 1} of {self.params.get('steps')}: "
            f"the loss is {loss} (the weights are from before that batch; try a lower learning "
            "rate, or check x and y for huge values)",
            file=sys.stderr,
        )


# ---- progress ------------------------------------------------------------------------------------


def _terminal_size(stream: Any) -> tuple[int, int]:
    """(columns, lines) of the terminal behind `stream`; 0 where it does not say."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return 0, 0
    return size.columns, size.lines


def format_logs(logs: dict) -> str:
    """'loss: 0.1234 - accuracy: 0.9500'."""
    return " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())


class ProgbarLogger(Callback):
    """verbose=1: a tqdm bar per epoch on a terminal, else a line per epoch; verbose=2: a line."""

    rank_zero_only = True

    def __init__(self, verbose: int = 1, stream: Any = None) -> None:
        super().__init__()
        self.verbose = verbose
        self.stream = stream
        self._bar: Any = None
        self._start = 0.0

    def _out(self) -> Any:
        return self.stream or sys.stdout

    def on_train_begin(self, logs: dict | None = None) -> None:
        note = self.params.get("split")
        if note and self.verbose in (1, 2):
            print(f"fit: {note}", file=self._out())

    def _use_bar(self) -> bool:
        out = self._out()
        return self.verbose == 1 and hasattr(out, "isatty") and out.isatty()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()
        if self._use_bar():
            from tqdm.auto import tqdm  # imported here: `import gnn` must not pull tqdm in

            epochs = self.params.get("epochs", "?")
            # tqdm draws nothing on a terminal that reports 0 columns or 0 lines (ptys that
            # were never sized, as in some CI runners): then use a fixed size instead
            cols, lines = _terminal_size(self._out())
            sized = cols > 0 and lines > 0
            self._bar = tqdm(
                total=self.params.get("steps"),
                desc=f"Epoch {epoch + 1}/{epochs}",
                file=self._out(),
                leave=True,
                dynamic_ncols=sized,
                ncols=None if sized else (cols or 100),
                nrows=None if sized else 24,
            )

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self._bar is not None:
            self._bar.update(1)
            if logs:
                self._bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items()}, refresh=False)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        took = time.perf_counter() - self._start
        if self._bar is not None:
            self._bar.set_postfix({k: f"{v:.4f}" for k, v in (logs or {}).items()}, refresh=False)
            self._bar.close()
            self._bar = None
            return
        if self.verbose in (1, 2):
            epochs = self.params.get("epochs", "?")
            print(
                f"Epoch {epoch + 1}/{epochs} - {took:.2f}s - {format_logs(logs or {})}",
                file=self._out(),
                flush=True,
            )

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
