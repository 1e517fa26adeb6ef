"""Helpers the example recipes share: CLI arguments, training under Ctrl-C, saving, plotting."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

FORMAT = "gnn-example/1"


def arg(args: Any, name: str, default: Any) -> Any:
    """args.<name> when given (not None), else the recipe's default."""
    value = getattr(args, name, None)
    return default if value is None else value


def metadata_path(weights_path: str | os.PathLike) -> Path:
    """Where the JSON beside a weights file lives: same name, suffix .json."""
    p = Path(weights_path)
    return p.with_suffix(".json") if p.suffix != ".json" else p.with_name(p.name + ".meta.json")


def save_example(
    model: Any, path: str | os.PathLike, example: str, config: dict, **extra: Any
) -> Path:
    """Write the weights (safetensors, atomic) and a JSON naming the recipe and its settings."""
    from gnn.train.callbacks import save_weights

    save_weights(model, os.fspath(path))
    meta = {
        "format": FORMAT,
        "example": example,
        "weights": Path(path).name,
        "config": config,
        **extra,
    }
    mpath = metadata_path(path)
    tmp = mpath.with_name(f".{mpath.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(meta, indent=2))
    os.replace(tmp, mpath)
    return mpath


def load_weights(path: str | os.PathLike) -> dict:
    """The state dict in a safetensors file (NumPy arrays)."""
    try:
        from gnn.io import load
    except ImportError:
        from safetensors.numpy import load_file

        return load_file(os.fspath(path))
    return load(os.fspath(path))


def read_metadata(path: str | os.PathLike) -> dict:
    """The JSON beside a saved example's weights (checked)."""
    mpath = metadata_path(path)
    if not Path(path).exists():
        raise FileNotFoundError(f"no weights file at {path}")
    if not mpath.exists():
        raise FileNotFoundError(
            f"{path} has no {mpath.name} beside it; save models with `gnn train NAME --save {path}`"
        )
    meta = json.loads(mpath.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{mpath}: not a gnn example file (format {meta.get('format')!r})")
    return meta


def plot(history: Any, path: str | None, log: Any, saved_to: str | None = None) -> None:
    """history.plot(path) when asked, with a hint instead of a crash when matplotlib is missing.

    The recipes call it after saving: any other failure is a RuntimeError naming the plot and
    where the model was saved (`saved_to`), so a failing plot never hides that the work is kept.
    """
    if not path:
        return
    try:
        history.plot(path)
    except ImportError as exc:
        log(f"no plot: {exc}")
        return
    except Exception as exc:  # whatever the plotting library raises
        saved = f"; the model was saved to {saved_to}" if saved_to else ""
        raise RuntimeError(f"could not write the plot to {path}: {exc}{saved}") from exc
    log(f"training curves written to {path}")


# ---- Ctrl-C during training ----------------------------------------------------------------------


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training, raised between two steps: carries the model as trained so far.

    A KeyboardInterrupt, so code that does not know it still stops as on any Ctrl-C; `gnn train`
    catches it and saves the model with `save` (with --save).
    """

    def __init__(self, model: Any, example: str, config: dict, extra: dict[str, Any]) -> None:
        super().__init__("training interrupted (Ctrl-C)")
        self.model = model
        self.example = example
        self.config = config
        self.extra = extra

    def save(self, path: str | os.PathLike) -> Path:
        """Write the weights and settings as save_example does, marked "interrupted": true."""
        return save_example(
            self.model, path, self.example, self.config, **self.extra, interrupted=True
        )


class Interruptible:
    """Training under Ctrl-C: the model and settings a TrainingInterrupted will carry.

    Use as `with interruptible(model, "xor", config) as guard:` around training, and mark each
    step with `with guard.step():` (a manual loop) or pass `guard.callback()` to fit. A Ctrl-C
    between steps raises TrainingInterrupted at once; one during a step waits for the step to
    end, because an optimizer update stopped half-way (some layers updated, others not) would
    be saved as if it were a trained model. A second Ctrl-C during that step stops at once with
    a plain KeyboardInterrupt: the weights are then half-updated, and nothing is saved.
    """

    def __init__(self, model: Any, example: str, config: dict, extra: dict[str, Any]) -> None:
        self.model = model
        self.example = example
        self.config = config
        self.extra = extra
        self._in_step = False
        self._pending = False
        self._previous: Any = None
        self._installed = False

    def interrupted(self) -> TrainingInterrupted:
        """The exception that hands the model as it is now back to the caller."""
        return TrainingInterrupted(self.model, self.example, self.config, self.extra)

    def __enter__(self) -> Interruptible:
        # Only over Python's own Ctrl-C handler, and only where signals can be handled (the main
        # thread): an ignored SIGINT (a background job) or an application's handler stays theirs.
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        ):
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
            self._installed = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False
        self._in_step = False
        if self._pending and exc is None:  # a Ctrl-C during a step that never reached its end
            self._pending = False
            raise self.interrupted()

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        if not self._in_step:
            raise self.interrupted()
        if not self._pending:
            self._pending = True
            return
        raise KeyboardInterrupt("a second Ctrl-C stopped training in the middle of a step")

    def begin_step(self) -> None:
        """From here to end_step, Ctrl-C waits: the model is being updated."""
        self._in_step = True

    def end_step(self) -> None:
        """The step is complete: raise TrainingInterrupted for a Ctrl-C that came during it."""
        self._in_step = False
        if self._pending:
            self._pending = False
            raise self.interrupted()

    @contextlib.contextmanager
    def step(self) -> Iterator[None]:
        """One training step (forward, backward, optimizer update) that Ctrl-C does not cut."""
        self.begin_step()
        try:
            yield
        finally:
            self._in_step = False  # an error in the step: Ctrl-C no longer waits for its end
        self.end_step()

    def callback(self) -> Any:
        """A fit() callback that marks each batch as one step."""
        from gnn.train.callbacks import Callback

        guard = self

        class _Steps(Callback):
            """Each batch of fit is one step that Ctrl-C does not cut."""

            def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
                guard.begin_step()

            def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
                guard.end_step()

            def on_train_end(self, logs: dict | None = None) -> None:
                # fit left a batch without its end (a NaN loss stops before the update): no
                # update is in flight; a pending Ctrl-C is raised when the `with` block ends
                guard._in_step = False

        return _Steps()


def interruptible(model: Any, example: str, config: dict, **extra: Any) -> Interruptible:
    """A context for training `model` in which Ctrl-C raises TrainingInterrupted between steps.

    `example`, `config` and `extra` are what save_example writes beside the weights.
    """
    return Interruptible(model, example, config, extra)


def fit_and_evaluate(
    model: Any,
    example: str,
    config: dict,
    data: tuple,
    validation_data: tuple,
    *,
    epochs: int,
    batch_size: int,
    verbose: int,
    **extra: Any,
) -> tuple[Any, dict]:
    """Keras fit on `data` (x, y), then evaluate on `validation_data`, all under Ctrl-C's guard.

    Returns (history, evaluate's dict). A Ctrl-C stops between batches (or during the final
    evaluation) and raises TrainingInterrupted carrying the model; `extra` is saved with it.
    """
    with interruptible(model, example, config, **extra) as guard:
        history = model.fit(
            *data,
            epochs=epochs,
            batch_size=batch_size,
            validation_data=validation_data,
            verbose=verbose,
            callbacks=[guard.callback()],
        )
        return history, model.evaluate(*validation_data)
