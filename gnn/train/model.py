"""Model: a Module with Keras's training methods (compile, fit, evaluate, predict, summary), and
the Keras Sequential built on it.

fit is a loop over overridable steps, as in Keras 3: data_adapter prepares the batches,
`train_step(batch)` trains on one, `test_step(batch)` scores one, `predict_step(x)` predicts one;
History, the progress display and everything else that reports go through callbacks.
"""

from __future__ import annotations

import contextlib
import inspect
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from gnn import creation, nn
from gnn.amp import quiet_overflow, training_setup
from gnn.config import no_grad
from gnn.nn.module import Module
from gnn.tensor import Tensor
from gnn.train import callbacks as cb_mod
from gnn.train import compile_utils, data_adapter
from gnn.train.callbacks import Callback, CallbackList, History
from gnn.train.compile_utils import Compiled, LossHead, NonFiniteLoss, Tally
from gnn.train.losses import get_loss
from gnn.train.metrics import check_metric_name
from gnn.train.shards import Shards
from gnn.train.summary import summary_text


class _Fitting:
    """What one fit call's steps need besides the batch: the precision and the update."""

    def __init__(self, autocast: Any, scaler: Any, shards: Shards | None) -> None:
        self.autocast, self.scaler, self.shards = autocast, scaler, shards

    def update(self, loss: Tensor, optimizer: Any) -> None:
        """backward, the gradient average over ranks, then the (loss-scaled) optimizer step."""
        with quiet_overflow(self.scaler):
            self.scaler.scale(loss).backward()
        if self.shards is not None:
            self.shards.reducer.sync_gradients()
        self.scaler.step(optimizer)  # skipped on inf/NaN gradients under float16
        self.scaler.update()


class Model(Module):
    """A Module that trains itself the Keras way: compile, fit, evaluate, predict, summary.

    Subclass it as you would nn.Module (define forward), or wrap a ready Module:
    `gnn.Model(net)` trains `net` in place (save `net`'s weights to keep its key names).
    Override train_step / test_step / predict_step to change what one batch does.
    """

    def __init__(self, module: Module | None = None) -> None:
        super().__init__()
        if module is not None:
            if not isinstance(module, Module):
                raise TypeError(f"Model: expected a Module to wrap, got {type(module).__name__}")
            self.module = module
        self.optimizer: Any = None
        self.stop_training = False
        self.history: History | None = None
        self.compiled: Compiled | None = None
        self._head: LossHead | None = None
        self._metrics: list[tuple[str, Any]] = []
        self._tally: Tally | None = None
        self._fitting: _Fitting | None = None

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if "module" not in self._modules:
            raise NotImplementedError(
                f"{type(self).__name__} has no forward(): define one, or wrap a module: "
                "gnn.Model(net)"
            )
        return self._modules["module"](*args, **kwargs)

    @property
    def body(self) -> Module:
        """The module whose layers are listed and fused: the wrapped one, else the model."""
        inner = self._modules.get("module")
        return inner if type(self) is Model and inner is not None else self

    # ---- compile -------------------------------------------------------------------------------

    def compile(
        self,
        optimizer: Any = "adam",
        loss: Any = "binary_crossentropy",
        metrics: list[Any] | None = None,
        from_logits: bool = False,
    ) -> None:
        """Choose the optimizer, loss and metrics (names as in Keras, or objects).

        optimizer: "adam" | "adamw" | "sgd" | "rmsprop", an OptimizerSpec, a gnn.optim optimizer,
        or a function params -> optimizer. loss: "binary_crossentropy" |
        "categorical_crossentropy" | "sparse_categorical_crossentropy" | "mse" | "mae", a Loss,
        a gnn.nn loss module, or fn(y_true, y_pred). from_logits=True: the model's outputs are
        logits, not probabilities.
        """
        spec = compile_utils.optimizer_spec(optimizer)
        loss_obj = get_loss(loss, from_logits)
        metrics = list(metrics or [])
        for m in metrics:
            check_metric_name(m)
        self.compiled = Compiled(spec, loss_obj, metrics)
        self.optimizer, self.stop_training = None, False
        self._build_from_input_shape()
        if not self._has_lazy() and any(True for _ in self.parameters()):
            self._ensure_optimizer()

    def _compiled(self, who: str) -> Compiled:
        if self.compiled is None:
            raise RuntimeError(f"{who}: call model.compile(optimizer=..., loss=...) first")
        return self.compiled

    def _has_lazy(self) -> bool:
        return any(getattr(m, "built", True) is False for m in self.modules())

    def _ensure_optimizer(self) -> Any:
        if self.optimizer is None:
            self.optimizer = compile_utils.build_optimizer(self._compiled("fit").optimizer, self)
        return self.optimizer

    def _prepare(self, out_shape: tuple) -> None:
        """The loss head and metrics for outputs of `out_shape`."""
        cfg = self._compiled("fit")
        self._head = LossHead(self, self.body, cfg.loss)
        self._metrics = compile_utils.bound_metrics(cfg, out_shape)

    # ---- the steps -----------------------------------------------------------------------------

    def compute_loss(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """(the batch's loss, regularizers included; the predictions, detached)."""
        assert self._head is not None, "compute_loss runs inside fit or evaluate"
        return self._head(x, y)

    def train_step(self, batch: data_adapter.Batch) -> dict[str, float]:
        """One update on one batch (x, y, samples, loss weight); returns the running logs.

        zero_grad, forward and loss (under fit's mixed precision), the batch counted in the logs
        (a NaN or infinite loss raises NonFiniteLoss here, before the update), then backward and
        the optimizer step. Override it to train differently, from the same parts.
        """
        x, y, samples, weight = batch
        self.optimizer.zero_grad()
        with self.autocast():
            loss, pred = self.compute_loss(x, y)
        logs = self.record_batch(loss, y, pred, samples)
        self.apply_gradients(loss if weight == 1.0 else loss * weight)
        return logs

    def test_step(self, batch: data_adapter.Batch) -> dict[str, float]:
        """Score one batch (eval mode, no graph); returns the running logs."""
        x, y = batch[0], batch[1]
        loss, pred = self.compute_loss(x, y)
        return self.record_batch(loss, y, pred, len(x))

    def record_batch(
        self, loss: Tensor, y: Tensor, y_pred: Tensor, samples: int | None = None
    ) -> dict[str, float]:
        """Count one batch in the running loss and metrics; returns their means so far."""
        assert self._tally is not None, "record_batch runs inside fit or evaluate"
        self._tally.add(loss, y, y_pred, len(y) if samples is None else samples)
        return self._tally.logs()

    def apply_gradients(self, loss: Tensor) -> None:
        """backward from `loss` and one optimizer step (loss-scaled under float16)."""
        assert self._fitting is not None, "apply_gradients runs inside fit"
        self._fitting.update(loss, self.optimizer)

    def autocast(self) -> Any:
        """The mixed-precision context fit's forward passes run in (a no-op outside fit)."""
        return self._fitting.autocast if self._fitting is not None else contextlib.nullcontext()

    def predict_step(self, x: Tensor) -> Tensor:
        """The model's output for one batch of inputs."""
        return self(x)

    # ---- fit -----------------------------------------------------------------------------------

    def fit(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int = 32,
        epochs: int = 1,
        verbose: int = 1,
        callbacks: list[Callback] | None = None,
        validation_split: float = 0.0,
        validation_data: Any = None,
        shuffle: bool = True,
        initial_epoch: int = 0,
        scheduler: Any = None,
        stop_on_nan: bool = True,
        mixed_precision: str | None = None,
        cuda_graph: bool = False,
    ) -> History:
        """Train for `epochs` passes over (x, y); returns a History of per-epoch losses and metrics.

        x, y: arrays, frames or Tensors, or x a Dataset / DataLoader of (x, y) pairs.
        validation_split takes the LAST samples (before shuffling), as Keras does. scheduler:
        stepped once per epoch (val_loss, or loss, if its step takes metrics). A NaN/Inf loss
        stops fit before that batch's update (stop_on_nan). mixed_precision: "bf16" | "fp16".
        cuda_graph: replay the step as a CUDA graph. Details: docs/tutorial-keras.md.
        """
        cfg = self._compiled("fit")
        shards = Shards.for_fit()
        verbose = verbose if shards is None or shards.rank == 0 else 0
        epochs = data_adapter.whole(epochs, "epochs", "fit", 0)
        batch_size = data_adapter.whole(batch_size, "batch_size", "fit", 1)
        initial_epoch = data_adapter.whole(initial_epoch, "initial_epoch", "fit", 0)
        data = data_adapter.for_fit(
            self, cfg.loss, x, y, batch_size, validation_split, validation_data
        )
        self._prepare(data.out_shape)
        opt = self._ensure_optimizer()
        if scheduler is not None and not hasattr(scheduler, "step"):
            scheduler = scheduler(opt)
        device = data_adapter.placement(self)[0]
        autocast, scaler = training_setup(mixed_precision, str(device))
        step = (
            self._graphed_step(device, autocast, scaler, shards) if cuda_graph else self.train_step
        )
        cbs, history = self._callbacks(
            callbacks, verbose, epochs, batch_size, data, scheduler, stop_on_nan
        )
        if shards is not None:
            shards.start(self)  # every rank takes rank 0's weights
            cbs.callbacks = [cb for cb in cbs.callbacks if not cb.rank_zero_only or not shards.rank]
        self._fitting = _Fitting(autocast, scaler, shards)
        cbs.on_train_begin({})
        try:
            for epoch in range(initial_epoch, epochs):
                self.train()
                cbs.on_epoch_begin(epoch, {})
                self._tally = Tally(self._metrics, stop_on_nan, shards)
                logs = self._train_epoch(data.train.batches(shuffle, shards), step, cbs, epoch)
                if logs is None:  # a NaN loss stopped training
                    break
                if data.val is not None:
                    logs.update({f"val_{k}": v for k, v in self._evaluate(data.val).items()})
                _step_scheduler(scheduler, logs)
                if cbs.log_lr:
                    logs["lr"] = float(opt.param_groups[0]["lr"])
                cbs.on_epoch_end(epoch, logs)
                if self.stop_training:
                    break
        finally:
            self._fitting = self._tally = None
            cbs.on_train_end({})
        return history

    def _train_epoch(
        self, batches: Any, step: Callable, cbs: Any, epoch: int
    ) -> dict[str, float] | None:
        """Run the batches through `step`; the epoch's logs (the last step's running means), or
        None when a NaN loss stopped training."""
        logs: dict[str, float] = {}
        for b, batch in enumerate(batches):
            cbs.on_train_batch_begin(b, {})
            try:
                logs = step(batch)
            except NonFiniteLoss as bad:
                cbs.on_nonfinite_loss(epoch, b, bad.value)
                self.stop_training = True
                return None
            cbs.on_train_batch_end(b, logs)
            if self.stop_training:
                break
        if self._fitting is not None and self._fitting.shards is not None:
            self._fitting.shards.reducer.broadcast_buffers_now()  # BatchNorm: rank 0's stats
        return dict(logs)

    def _callbacks(
        self,
        callbacks: list[Callback] | None,
        verbose: int,
        epochs: int,
        batch_size: int,
        data: data_adapter.FitData,
        scheduler: Any,
        stop_on_nan: bool,
    ) -> tuple[CallbackList, History]:
        """History first, the user's callbacks, the NaN report and the progress display; and the
        History (also kept as self.history)."""
        self.history = history = History()
        cb_list: list[Callback] = [history, *(callbacks or [])]
        if stop_on_nan:
            cb_list.append(cb_mod.NonFiniteLossReport())
        if verbose:
            cb_list.append(cb_mod.ProgbarLogger(verbose))
        log_lr = scheduler is not None or any(cb.sets_learning_rate for cb in cb_list)
        logged = ["loss", *(name for name, _ in self._metrics)]
        logged += [f"val_{k}" for k in logged] if data.val is not None else []
        logged += ["lr"] if log_lr else []
        params = {"epochs": epochs, "steps": data.train.steps, "verbose": verbose,
                  "batch_size": batch_size, "metrics": logged, "split": data.note}  # fmt: skip
        cbs = CallbackList(cb_list, model=self, params=params)
        cbs.log_lr = log_lr
        self.stop_training = False
        return cbs, history

    def _graphed_step(self, device: Any, autocast: Any, scaler: Any, shards: Any) -> Callable:
        """train_step's work replayed as a CUDA graph, one per batch shape (the last batch of an
        epoch may be shorter); see gnn/train/cuda_graph.py and docs/cuda-graphs.md."""
        from gnn.train.cuda_graph import GraphedStep

        if getattr(device, "type", None) != "cuda":
            raise ValueError(f"fit: cuda_graph=True needs a model on a CUDA device, not {device}")
        if shards is not None or scaler.is_enabled():
            raise ValueError("fit: cuda_graph=True does not combine with mpiexec or float16")
        graphs: dict[tuple, tuple[Any, list[Tensor]]] = {}

        def graphed(shape: tuple) -> tuple[Any, list[Tensor]]:
            preds: list[Tensor] = []  # the step's predictions: static once captured

            def update(x: Tensor, y: Tensor) -> Tensor:
                self.optimizer.zero_grad()
                with autocast:
                    loss, pred = self.compute_loss(x, y)
                preds[:] = [pred]
                loss.backward()
                self.optimizer.step()
                return loss

            # optimizer=: a schedule's new learning rate makes a new capture (replays keep the old)
            made = GraphedStep(update, optimizer=self.optimizer)
            return graphs.setdefault(shape, (made, preds))

        def step(batch: data_adapter.Batch) -> dict[str, float]:
            x, y, share, _ = batch
            run, preds = graphs.get((x.shape, y.shape)) or graphed((x.shape, y.shape))
            loss = run(x, y)
            return self.record_batch(loss, y, preds[0], share)  # a NaN shows after its update

        return step

    # ---- evaluate and predict ------------------------------------------------------------------

    def _evaluate(self, data: Any) -> dict[str, float]:
        """Loss (the regularizers' penalty included) and metrics over data's batches, eval mode."""
        was_training, outer = self.training, self._tally
        self.eval()
        self._tally = Tally(self._metrics)
        logs: dict[str, float] = {"loss": 0.0}
        try:
            with no_grad():
                for batch in data.batches():
                    logs = self.test_step(batch)
        finally:
            self.train(was_training)
            self._tally = outer
        return logs

    def evaluate(
        self, x: Any, y: Any = None, batch_size: int = 32, verbose: int = 0
    ) -> dict[str, float]:
        """Loss and metrics over (x, y) in eval mode: {"loss": ..., "accuracy": ...}."""
        cfg = self._compiled("evaluate")
        batch_size = data_adapter.whole(batch_size, "batch_size", "evaluate", 1)
        data, out_shape = data_adapter.for_evaluate(self, cfg.loss, x, y, batch_size)
        self._prepare(out_shape)
        logs = self._evaluate(data)
        if verbose:
            print("evaluate: " + cb_mod.format_logs(logs))
        return logs

    def predict(self, x: Any, batch_size: int = 32, verbose: int = 0) -> np.ndarray:
        """The model's outputs for x (eval mode, no graph) as a NumPy array."""
        batch_size = data_adapter.whole(batch_size, "batch_size", "predict", 1)
        data = data_adapter.for_predict(self, x, batch_size)
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                outs = [self.predict_step(xb).numpy() for xb in data.inputs()]
        finally:
            self.train(was_training)
        return np.concatenate(outs) if outs else np.zeros((0,))

    # ---- summary -------------------------------------------------------------------------------

    def _input_shape(self) -> tuple | None:
        shape = self.__dict__.get("_keras_input_shape")
        if shape is not None:
            return tuple(shape)
        for m in self.modules():
            s = getattr(m, "input_shape", None)
            if s is not None:
                return tuple(s)
        return None

    def _build_from_input_shape(self) -> None:
        """Create lazy layers' weights now when the first layer has input_shape (as Keras does)."""
        shape = self._input_shape()
        if shape is None or not self._has_lazy():
            return
        device, dtype = data_adapter.placement(self)
        data_adapter.build(self, creation.zeros((1, *shape), dtype=dtype, device=device), "build")

    def summary(self, print_fn: Callable[[str], Any] | None = print) -> str:
        """Print (and return) a table of layers, output shapes and parameter counts."""
        self._build_from_input_shape()
        if self._has_lazy():
            raise RuntimeError(
                "summary: the model is not built yet; give the first layer "
                "input_shape=(features,), or call fit/predict once"
            )
        text = summary_text(self, self.body, self._input_shape(), *data_adapter.placement(self))
        if print_fn is not None:
            print_fn(text)
        return text


def _step_scheduler(scheduler: Any, logs: dict[str, float]) -> None:
    """One epoch's scheduler step; one whose step takes `metrics` (ReduceLROnPlateau) gets
    val_loss, or loss without validation."""
    if scheduler is None:
        return
    try:
        wants_metric = "metrics" in inspect.signature(scheduler.step).parameters
    except (TypeError, ValueError):  # a builtin or C step: no signature to read
        wants_metric = False
    if wants_metric:
        scheduler.step(logs.get("val_loss", logs["loss"]))
    else:
        scheduler.step()


class Sequential(nn.Sequential, Model):
    """Layers applied in order, with Keras's training methods: gnn.Sequential(Dense(8), ...).

    An nn.Sequential (same state-dict names, slicing, .add) that is also a Model.
    """

    def __init__(self, *layers: Any) -> None:
        super().__init__(*layers)

    def __getitem__(self, index: int | slice) -> Any:
        got = super().__getitem__(index)  # a slice keeps the layers' names, and stays a Model
        return Sequential(OrderedDict(got.named_children())) if isinstance(index, slice) else got


def as_model(module: Module) -> Model:
    """`module` itself when it is a Model, else the Model that wraps it (made once, then kept)."""
    if isinstance(module, Model):
        return module
    if not isinstance(module, Module):
        raise TypeError(f"expected a gnn Module, got {type(module).__name__}")
    wrapper = module.__dict__.get("_keras_model")
    if wrapper is None:
        wrapper = Model(module)
        module.__dict__["_keras_model"] = wrapper  # a plain attribute, not a submodule
    return wrapper
