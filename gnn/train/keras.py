"""Keras-style training for any Module: compile, fit, evaluate, predict, summary.

These are plain functions taking the model first. Importing gnn.train attaches them to
gnn.nn.Module as methods (`Module.fit = fit`, ...), so `gnn.Sequential().fit(...)` works while
gnn.nn itself never imports this layer.
"""

from __future__ import annotations

import math
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import gnn
from gnn import functional as F
from gnn.amp import quiet_overflow, training_setup
from gnn.config import no_grad
from gnn.nn.activation import Sigmoid, Softmax
from gnn.nn.container import Sequential
from gnn.nn.module import Module
from gnn.ops.autocast import is_low
from gnn.tensor import Tensor
from gnn.train import metrics as metrics_mod
from gnn.train.callbacks import Callback, CallbackList, History, ProgbarLogger
from gnn.train.losses import Loss, get_loss

# name -> (gnn.optim class name, default learning rate as in Keras)
OPTIMIZERS = {
    "adam": ("Adam", 1e-3),
    "adamw": ("AdamW", 1e-3),
    "sgd": ("SGD", 1e-2),
    "rmsprop": ("RMSprop", 1e-3),
}


class OptimizerSpec:
    """An optimizer to build once the model's parameters exist: OptimizerSpec("adam", lr=0.01).

    `learning_rate=` is accepted as Keras spells it.
    """

    def __init__(self, name: str, **kwargs: Any) -> None:
        key = name.lower()
        if key not in OPTIMIZERS:
            raise ValueError(f"compile: unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}")
        if "learning_rate" in kwargs:
            kwargs["lr"] = kwargs.pop("learning_rate")
        self.name, self.kwargs = key, kwargs

    def build(self, params: list) -> Any:
        """The gnn.optim optimizer over `params`."""
        from gnn import optim

        cls_name, default_lr = OPTIMIZERS[self.name]
        cls = getattr(optim, cls_name, None)
        if cls is None:
            raise RuntimeError(f"compile: gnn.optim.{cls_name} is not available in this build")
        kwargs = dict(self.kwargs)
        kwargs.setdefault("lr", default_lr)
        return cls(params, **kwargs)

    def __repr__(self) -> str:
        return f"OptimizerSpec({self.name!r}, {self.kwargs})"


@dataclass
class _Compiled:
    optimizer: Any
    loss: Loss
    metrics: list[Any] = field(default_factory=list)


# ---- compile -------------------------------------------------------------------------------------


def compile(  # noqa: A001  (Keras's name)
    model: Module,
    optimizer: Any = "adam",
    loss: Any = "binary_crossentropy",
    metrics: list[Any] | None = None,
    from_logits: bool = False,
) -> None:
    """Choose the optimizer, loss and metrics (names as in Keras, or objects).

    optimizer: "adam" | "adamw" | "sgd" | "rmsprop", an OptimizerSpec, a gnn.optim optimizer, or
    a function params -> optimizer. loss: "binary_crossentropy" | "categorical_crossentropy" |
    "sparse_categorical_crossentropy" | "mse" | "mae", a Loss, a gnn.nn loss module, or
    fn(y_true, y_pred). from_logits=True: the model's outputs are logits, not probabilities.
    """
    if isinstance(optimizer, str):
        optimizer = OptimizerSpec(optimizer)
    elif not (
        isinstance(optimizer, OptimizerSpec) or hasattr(optimizer, "step") or callable(optimizer)
    ):
        raise TypeError(
            f"compile: optimizer must be a name, an optimizer or a callable, "
            f"got {type(optimizer).__name__}"
        )
    loss_obj = get_loss(loss, from_logits)
    metrics = list(metrics or [])
    for m in metrics:
        metrics_mod.check_metric_name(m)
    object.__setattr__(model, "_keras", _Compiled(optimizer, loss_obj, metrics))
    object.__setattr__(model, "optimizer", None)
    object.__setattr__(model, "stop_training", False)
    _build_from_input_shape(model)
    if not _has_lazy(model) and any(True for _ in model.parameters()):
        _ensure_optimizer(model)


def _compiled(model: Module, who: str) -> _Compiled:
    cfg = model.__dict__.get("_keras")
    if cfg is None:
        raise RuntimeError(f"{who}: call model.compile(optimizer=..., loss=...) first")
    return cfg


def _has_lazy(model: Module) -> bool:
    return any(getattr(m, "built", True) is False for m in model.modules())


def _ensure_optimizer(model: Module) -> Any:
    cfg = _compiled(model, "fit")
    if model.__dict__.get("optimizer") is not None:
        return model.optimizer
    spec = cfg.optimizer
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise RuntimeError("fit: the model has no trainable parameters")
    if isinstance(spec, OptimizerSpec):
        opt = spec.build(params)
    elif hasattr(spec, "step") and hasattr(spec, "param_groups"):
        opt = spec
    else:
        opt = spec(params)
    object.__setattr__(model, "optimizer", opt)
    return opt


# ---- data preparation ----------------------------------------------------------------------------


def _model_device_dtype(model: Module) -> tuple[Any, Any]:
    for p in model.parameters():
        return p.device, p.dtype
    for m in model.modules():  # not built yet: where .to() put the lazy layers
        placement = m.lazy_placement() if hasattr(m, "lazy_placement") else None
        if placement is not None:
            return placement
    return gnn.backend.parse_device(None), gnn.get_default_dtype()


def _columns(a: Any) -> list[str] | None:
    """Column labels of a pandas DataFrame (to name them in errors), else None."""
    cols = getattr(a, "columns", None)
    if cols is None or isinstance(a, (np.ndarray, Tensor)):
        return None
    return [str(c) for c in cols]


def _as_host(a: Any, name: str, who: str) -> Any:
    """Arrays stay where they are (a Tensor's array on its device); lists etc. become NumPy."""
    if isinstance(a, Tensor):
        return a
    if hasattr(a, "to_numpy") and not isinstance(a, np.ndarray):  # pandas
        a = a.to_numpy()
    try:
        arr = np.asarray(a)
    except ValueError as exc:  # ragged nested lists
        raise ValueError(f"{who}: {name} is not a rectangular array of numbers: {exc}") from exc
    if arr.dtype.kind not in "biuf":
        what = "an object array" if arr.dtype == object else f"dtype {arr.dtype}"
        raise TypeError(
            f"{who}: {name} must be numeric, got {what}; encode strings and categories as "
            "numbers first (e.g. one-hot columns)"
        )
    if arr.ndim == 0:
        raise ValueError(f"{who}: {name} must have a sample dimension, got a scalar")
    return arr


def _check_finite(a: Any, name: str, who: str, columns: list[str] | None = None) -> None:
    """A clear error for NaN or infinite values, naming the columns (of 2-D data) and rows."""
    data = a.array if isinstance(a, Tensor) else a
    if data.dtype.kind != "f" or data.size == 0:
        return
    xp = a._be.xp if isinstance(a, Tensor) else np
    for what, bad in (("NaN", xp.isnan(data)), ("an infinite value", xp.isinf(data))):
        if not bool(bad.any()):
            continue
        per_row = bad.reshape(len(data), -1).any(axis=1)
        rows = int(per_row.sum())
        if data.ndim == 2:
            cols = [int(c) for c in xp.nonzero(bad.any(axis=0))[0].tolist()]
            shown = [
                f"{c} ({columns[c]!r})" if columns and c < len(columns) else str(c)
                for c in cols[:10]
            ]
            more = f" and {len(cols) - 10} more" if len(cols) > 10 else ""
            where = f"column{'s' if len(cols) > 1 else ''} {', '.join(shown)}{more}"
        else:
            where = f"{int(bad.sum())} element(s)"
        first = int(xp.nonzero(per_row)[0][0])
        fix = (
            "fill or drop missing values first"
            if what == "NaN"
            else "clip or drop such values (they would turn the weights into NaN)"
        )
        raise ValueError(
            f"{who}: {name} contains {what} in {where} ({rows} row(s), first at row {first}); {fix}"
        )


def _to_device(a: Any, device: Any, dtype: Any) -> Tensor:
    """A Tensor on `device`; floating data takes the model's dtype, integers stay integers."""
    t = a if isinstance(a, Tensor) else gnn.from_numpy(np.ascontiguousarray(a))
    if t.dtype.kind == "f" and t.dtype != dtype:
        t = t.to(dtype=dtype)
    elif t.dtype.kind == "b":
        t = t.to(dtype=dtype)
    return t.to(device).detach()


def _take(t: Tensor, idx: Any) -> Tensor:
    return Tensor._make(t._be.xp.take(t.array, idx, axis=0), t._be, False)


# ---- fused forward -------------------------------------------------------------------------------


def _final_activation(model: Module) -> tuple[str | None, Any]:
    """(activation name, how to get the pre-activation) when the model ends in sigmoid / softmax."""
    if not isinstance(model, Sequential) or len(model) == 0:
        return None, None
    last = model[len(model) - 1]
    name = getattr(last, "activation_name", None)
    if name in ("sigmoid", "softmax") and hasattr(last, "pre_activation"):
        return name, "pre_activation"
    if isinstance(last, Sigmoid):
        return "sigmoid", "skip"
    if isinstance(last, Softmax) and last.dim in (-1, 1):
        return "softmax", "skip"
    return None, None


def _forward(model: Module, x: Tensor, fuse: str | None) -> Tensor:
    """The model's output, or with `fuse` its last layer's input to the activation (logits)."""
    if fuse is None:
        return model(x)
    layers = list(model)
    for m in layers[:-1]:
        x = m(x)
    return layers[-1].pre_activation(x) if fuse == "pre_activation" else x


def _activate(z: Tensor, act: str) -> Tensor:
    return F.sigmoid(z) if act == "sigmoid" else F.softmax(z, -1)


def _regularization(model: Module) -> Tensor | None:
    total = None
    for m in model.modules():
        for attr, pname in (("kernel_regularizer", "weight"), ("bias_regularizer", "bias")):
            reg = getattr(m, attr, None)
            p = m._parameters.get(pname)
            if reg is not None and p is not None:
                term = reg(p)
                total = term if total is None else total + term
    return total


# ---- checks --------------------------------------------------------------------------------------


def _build(
    model: Module, x: Tensor, who: str, record: bool = True, name: str = "x"
) -> tuple[int, ...]:
    """Run one sample through the model (building lazy layers); returns the output shape.

    record=True remembers the sample shape as the model's input shape (for summary()).
    """
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            out = model(x[:1] if len(x) else x)
    except ValueError as exc:
        raise ValueError(
            f"{who}: {name} has samples of shape {tuple(x.shape[1:])}, which the model "
            f"does not accept: {exc}"
        ) from exc
    finally:
        model.train(was_training)
    if not isinstance(out, Tensor):
        raise TypeError(f"{who}: the model must return one Tensor, got {type(out).__name__}")
    if record:
        object.__setattr__(model, "_keras_input_shape", tuple(x.shape[1:]))
    return tuple(out.shape)


def _prepare_targets(loss: Loss, y: Any, out_shape: tuple[int, ...], who: str) -> Any:
    """Check that y fits the loss and the model's output; returns y reshaped (on the host)."""
    ya = y.numpy() if isinstance(y, Tensor) else y
    width = int(np.prod(out_shape[1:])) if len(out_shape) > 1 else 1
    n = len(ya)
    if loss.kind == "sparse":
        labels = ya.reshape(n, -1) if ya.ndim > 1 else ya
        if labels.ndim == 2 and labels.shape[1] != 1:
            raise ValueError(
                f"{who}: sparse_categorical_crossentropy needs integer labels of shape "
                f"(N,), got y of shape {ya.shape}; for one-hot y use "
                "loss='categorical_crossentropy'"
            )
        labels = labels.reshape(n)
        if labels.dtype.kind == "f" and not np.all(labels == np.round(labels)):
            raise ValueError(
                f"{who}: sparse_categorical_crossentropy needs integer class labels, "
                "y has fractional values"
            )
        labels = labels.astype(np.int64)
        classes = out_shape[-1] if len(out_shape) > 1 else 1
        if classes < 2:
            raise ValueError(
                f"{who}: sparse_categorical_crossentropy needs a model with one output "
                f"per class (Dense(C, activation='softmax')), the model gives {out_shape[1:]}; "
                "for two classes with one output use loss='binary_crossentropy'"
            )
        if n and (labels.min() < 0 or labels.max() >= classes):
            raise ValueError(
                f"{who}: labels must be in [0, {classes}) for a model with {classes} "
                f"outputs; y has labels from {labels.min()} to {labels.max()}"
            )
        return labels
    if loss.kind == "categorical":
        if ya.ndim != 2 or ya.shape[1] != width:
            hint = (
                " (y looks like integer labels: use loss='sparse_categorical_crossentropy')"
                if ya.ndim == 1
                else ""
            )
            raise ValueError(
                f"{who}: categorical_crossentropy needs one-hot y of shape (N, {width}) "
                f"for a model with {width} outputs, got {ya.shape}{hint}"
            )
        return ya
    if loss.kind == "binary":
        values = np.unique(ya) if n else np.array([])
        if values.size and (values.min() < 0 or values.max() > 1):
            shown = ", ".join(f"{v:g}" for v in values[:10])
            raise ValueError(
                f"{who}: binary_crossentropy needs targets in [0, 1] (0/1 labels), but y has "
                f"{values.size} distinct values ({shown}); for {values.size} classes use "
                f"loss='sparse_categorical_crossentropy' and a last layer "
                f"Dense({values.size}, activation='softmax')"
            )
    if ya.size != n * width:
        raise ValueError(
            f"{who}: the model gives {width} value(s) per sample {out_shape[1:]}, "
            f"but y has {ya.size // max(n, 1)} per sample (y shape {ya.shape})"
        )
    return ya.reshape((n,) + tuple(out_shape[1:]))


def _check_lengths(x: Any, y: Any, who: str) -> None:
    if y is not None and len(x) != len(y):
        raise ValueError(f"{who}: x has {len(x)} samples but y has {len(y)}; they must match")


def _class_coverage_warning(loss: Loss, y_train: Any, y_val: Any, source: str) -> None:
    """Warn when a class has samples on one side of the train/validation split only."""
    if loss.kind not in ("binary", "sparse", "categorical"):
        return

    def classes(a: Any) -> set | None:
        a = a.numpy() if isinstance(a, Tensor) else np.asarray(a)
        if loss.kind == "categorical":
            return set(np.argmax(a, axis=-1).tolist())
        if a.dtype.kind == "f" and not np.all(a == np.round(a)):
            return None  # soft targets (probabilities): no classes to count
        return set(a.astype(np.int64).reshape(-1).tolist())

    tr, va = classes(y_train), classes(y_val)
    if tr is None or va is None or tr == va:
        return
    only_tr, only_va = sorted(tr - va), sorted(va - tr)
    parts = []
    if only_tr:
        parts.append(f"class(es) {only_tr} missing from the validation data")
    if only_va:
        parts.append(f"class(es) {only_va} missing from the training data")
    hint = (
        " (validation_split takes the LAST samples: shuffle x and y before fit if they are sorted)"
        if source == "split"
        else ""
    )
    warnings.warn("fit: " + "; ".join(parts) + hint, stacklevel=3)


# ---- the loop ------------------------------------------------------------------------------------


class _Runner:
    """Holds what one fit/evaluate call needs: the loss, the metrics and the fused forward."""

    def __init__(self, model: Module, cfg: _Compiled, out_shape: tuple[int, ...]) -> None:
        self.model, self.loss = model, cfg.loss
        width = out_shape[-1] if len(out_shape) > 1 else 1
        self.metrics = [metrics_mod.get_metric(m, cfg.loss.kind, width) for m in cfg.metrics]
        act, how = _final_activation(model)
        self.act = act
        self.fuse = (
            how
            if (act is not None and not cfg.loss.from_logits and cfg.loss.fused_activation == act)
            else None
        )

    def step_outputs(self, xb: Tensor, yb: Tensor) -> tuple[Tensor, Tensor]:
        """(loss, predictions as the model would output them, detached)."""
        out = _forward(self.model, xb, self.fuse)
        if self.fuse is not None:
            loss = self.loss.from_logits_loss(yb, out)
            with no_grad():
                pred = _activate(out.detach(), self.act)
        else:
            loss = self.loss(yb, out)
            pred = out.detach()
        return loss, pred

    def metric_sums(self, yb: Tensor, pred: Tensor, sums: dict[str, list[float]]) -> None:
        for name, fn in self.metrics:
            s, c = fn(yb, pred)
            acc = sums.setdefault(name, [0.0, 0])
            acc[0] += s
            acc[1] += c

    def evaluate(self, x: Tensor, y: Tensor, batch_size: int) -> dict[str, float]:
        model = self.model
        was_training = model.training
        model.eval()
        total, count, sums = 0.0, 0, {}
        try:
            with no_grad():
                for start in range(0, len(x), batch_size):
                    xb, yb = x[start : start + batch_size], y[start : start + batch_size]
                    loss, pred = self.step_outputs(xb, yb)
                    total += float(loss.item()) * len(xb)
                    count += len(xb)
                    self.metric_sums(yb, pred, sums)
        finally:
            model.train(was_training)
        reg = _regularization(model)
        logs = {"loss": total / max(count, 1) + (float(reg.item()) if reg is not None else 0.0)}
        logs.update({k: s / max(c, 1) for k, (s, c) in sums.items()})
        return logs


def _whole(value: Any, name: str, who: str, low: int) -> int:
    """`value` as a Python int (NumPy integers too), or a ValueError naming `who` and `name`."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        kind = "a non-negative" if low == 0 else "a positive"
        raise ValueError(f"{who}: {name} must be {kind} integer, got {value!r}")
    if value < low:
        kind = "a non-negative" if low == 0 else "a positive"
        raise ValueError(f"{who}: {name} must be {kind} integer, got {value!r}")
    return int(value)


class _Shards:
    """fit on several processes (mpiexec): each rank's share of a batch, and sums over ranks."""

    def __init__(self) -> None:
        from gnn import distributed as dist

        self.dist = dist
        self.rank, self.size = dist.get_rank(), dist.get_world_size()
        self.reducer: Any = None

    @classmethod
    def for_fit(cls) -> _Shards | None:
        """None in one process; joins the process group when a launcher started several."""
        from gnn import distributed as dist

        if not dist.is_initialized() and dist.launcher_world_size() > 1:
            dist.init_process_group("mpi")
        return cls() if dist.get_world_size() > 1 else None

    def start(self, model: Module) -> None:
        from gnn.nn.parallel import DistributedDataParallel

        self.reducer = DistributedDataParallel(model)

    def same_order(self, order: Any) -> Any:
        """Rank 0's shuffle, so the ranks split the same batches."""
        return self.dist.broadcast_array(order, 0)

    def shard(self, idx: Any) -> tuple[Any, int, float]:
        """(this rank's indices, its sample count, the weight of its loss) for one batch.

        Contiguous shares, sizes differing by at most one. The weight share * size / batch makes
        the mean over ranks of the weighted losses the mean over the whole batch, as in one
        process. A rank with no sample runs the first one with weight 0 (it must still join
        the gradient average).
        """
        m = len(idx)
        lo, hi = m * self.rank // self.size, m * (self.rank + 1) // self.size
        if hi == lo:
            return idx[:1], 0, 0.0
        return idx[lo:hi], hi - lo, (hi - lo) * self.size / m

    def combine(
        self, runner: Any, yb: Tensor, pred: Tensor, value: float, share: int, sums: dict
    ) -> tuple[float, int]:
        """Add the batch's metric sums over all ranks to `sums`; (its mean loss, its size)."""
        local: dict[str, list[float]] = {}
        if share:
            runner.metric_sums(yb, pred, local)
        names = [name for name, _ in runner.metrics]
        vec = [value * share if share else 0.0, float(share)]
        for name in names:
            vec += local.get(name, [0.0, 0])
        totals = self.dist.all_reduce_array(np.array(vec, dtype=np.float64), "sum")
        for i, name in enumerate(names):
            acc = sums.setdefault(name, [0.0, 0])
            acc[0] += float(totals[2 + 2 * i])
            acc[1] += float(totals[3 + 2 * i])
        count = int(totals[1])
        return float(totals[0]) / max(count, 1), count


def fit(
    model: Module,
    x: Any = None,
    y: Any = None,
    batch_size: int = 32,
    epochs: int = 1,
    verbose: int = 1,
    callbacks: list[Callback] | None = None,
    validation_split: float = 0.0,
    validation_data: tuple | None = None,
    shuffle: bool = True,
    initial_epoch: int = 0,
    scheduler: Any = None,
    stop_on_nan: bool = True,
    mixed_precision: str | None = None,
) -> History:
    """Train for `epochs` passes over (x, y); returns a History of per-epoch losses and metrics.

    mixed_precision: "bf16" or "fp16" runs the training forward passes under gnn.autocast (fp16
    with a GradScaler); parameters stay float32, validation runs in float32
    (docs/mixed-precision.md).

    validation_split takes the LAST fraction of the samples (before shuffling), as Keras does.
    scheduler: a gnn.optim.lr_scheduler object (or fn(optimizer) -> scheduler), stepped once per
    epoch after the optimizer steps (ReduceLROnPlateau gets val_loss, or loss without validation).
    A NaN/Inf batch loss stops training before that batch's update (stop_on_nan=True).
    Under an MPI launcher (mpiexec -n N) each rank trains on its share of every batch of
    batch_size samples (the global batch) and logs the means over all ranks; only rank 0 prints
    and runs the rank_zero_only callbacks (docs/distributed.md).
    """
    who = "fit"
    cfg = _compiled(model, who)
    shards = _Shards.for_fit()
    if shards is not None and shards.rank != 0:
        verbose = 0  # progress and messages come from rank 0 only
    if x is None or y is None:
        raise ValueError("fit: needs x and y")
    if not isinstance(validation_split, (int, float)) or not 0.0 <= validation_split < 1.0:
        raise ValueError(f"fit: validation_split must be in [0, 1), got {validation_split!r}")
    epochs = _whole(epochs, "epochs", who, 0)
    batch_size = _whole(batch_size, "batch_size", who, 1)
    initial_epoch = _whole(initial_epoch, "initial_epoch", who, 0)
    xh, yh = _as_host(x, "x", who), _as_host(y, "y", who)
    _check_lengths(xh, yh, who)
    if len(xh) == 0:
        raise ValueError("fit: x is empty")
    _check_finite(xh, "x", who, _columns(x))
    _check_finite(yh, "y", who, _columns(y))

    device, dtype = _model_device_dtype(model)
    x_all = _to_device(xh, device, dtype)
    out_shape = _build(model, x_all, who)
    device, dtype = _model_device_dtype(model)
    x_all = _to_device(x_all, device, dtype)
    y_host = _prepare_targets(
        cfg.loss, yh if not isinstance(yh, Tensor) else yh.numpy(), out_shape, who
    )

    n = len(x_all)
    val = None
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("fit: validation_data must be a pair (x_val, y_val)")
        vwho = "fit (validation_data)"
        xv, yv = (_as_host(a, name, vwho) for a, name in zip(validation_data, ("x_val", "y_val")))
        _check_lengths(xv, yv, vwho)
        if len(xv) == 0:
            raise ValueError(f"{vwho}: x_val is empty")
        _check_finite(xv, "x_val", vwho, _columns(validation_data[0]))
        _check_finite(yv, "y_val", vwho, _columns(validation_data[1]))
        xv = _to_device(xv, device, dtype)
        val_shape = _build(model, xv, vwho, record=False, name="x_val")
        if val_shape[1:] != out_shape[1:]:
            raise ValueError(
                f"{vwho}: the model gives outputs of shape {val_shape[1:]} for x_val but "
                f"{out_shape[1:]} for x"
            )
        yv = _prepare_targets(
            cfg.loss, yv.numpy() if isinstance(yv, Tensor) else yv, out_shape, vwho
        )
        val = (xv, _to_device(yv, device, dtype))
        if verbose:
            print(f"fit: {n} samples for training, {len(xv)} for validation (validation_data)")
        _class_coverage_warning(cfg.loss, y_host, yv, "validation_data")
    elif validation_split > 0:
        split_at = int(n * (1.0 - validation_split))
        if split_at <= 0 or split_at >= n:
            raise ValueError(
                f"fit: validation_split={validation_split} of {n} samples leaves "
                f"{split_at} for training and {n - split_at} for validation"
            )
        if verbose:
            print(
                f"fit: {split_at} samples for training, {n - split_at} for validation "
                f"(the last {validation_split:.0%}, as Keras takes them)"
            )
        _class_coverage_warning(cfg.loss, y_host[:split_at], y_host[split_at:], "split")
        y_dev = _to_device(y_host, device, dtype)
        val = (x_all[split_at:].detach(), y_dev[split_at:].detach())
        x_all, y_host = x_all[:split_at].detach(), y_host[:split_at]
        n = split_at
    y_all = _to_device(y_host, device, dtype)

    opt = _ensure_optimizer(model)
    if scheduler is not None and not hasattr(scheduler, "step"):
        scheduler = scheduler(opt)
    runner = _Runner(model, cfg, out_shape)
    steps = math.ceil(n / batch_size)
    history = History()
    cb_list = [history, *(callbacks or [])]
    if verbose:
        cb_list.append(ProgbarLogger(verbose))
    if shards is not None:
        shards.start(model)  # every rank takes rank 0's weights
        if shards.rank != 0:  # checkpoints, CSV logs, progress: written by rank 0 alone
            cb_list = [cb for cb in cb_list if not getattr(cb, "rank_zero_only", False)]
    cbs = CallbackList(cb_list)
    log_lr = scheduler is not None or any(
        type(cb).__name__ in ("ReduceLROnPlateau", "LearningRateScheduler") for cb in cb_list
    )
    # every quantity an epoch logs, known before the first epoch (as Keras's params["metrics"])
    logged = ["loss", *(name for name, _ in runner.metrics)]
    logged += [f"val_{k}" for k in logged] if val is not None else []
    logged += ["lr"] if log_lr else []
    for cb in cb_list:
        cb.set_model(model)
        cb.set_params(
            {
                "epochs": epochs,
                "steps": steps,
                "verbose": verbose,
                "batch_size": batch_size,
                "metrics": list(logged),
            }
        )
    object.__setattr__(model, "stop_training", False)
    object.__setattr__(model, "history", history)
    be = x_all._be
    amp_forward, scaler = training_setup(mixed_precision, be.name)

    cbs.on_train_begin({})
    try:
        for epoch in range(initial_epoch, epochs):
            model.train()
            cbs.on_epoch_begin(epoch, {})
            order = be.permutation(n) if shuffle else be.xp.arange(n)
            if shuffle and be is not gnn.backend.get_backend("cpu"):
                order = be.asarray(order)
            if shards is not None and shuffle:
                order = shards.same_order(order)
            total, count, sums = 0.0, 0, {}
            bad = None
            for b in range(steps):
                cbs.on_train_batch_begin(b, {})
                idx = order[b * batch_size : (b + 1) * batch_size]
                share, weight = len(idx), 1.0
                if shards is not None:
                    idx, share, weight = shards.shard(idx)
                xb, yb = _take(x_all, idx), _take(y_all, idx)
                opt.zero_grad()
                with amp_forward:
                    loss, pred = runner.step_outputs(xb, yb)
                    reg = _regularization(model)
                    if reg is not None:
                        loss = loss + reg
                if is_low(pred.dtype):  # metrics read float32 predictions
                    pred = pred.float()
                value = float(loss.item())
                if shards is not None:  # the batch's loss and metric sums over all ranks
                    value, share = shards.combine(runner, yb, pred, value, share, sums)
                if not math.isfinite(value) and stop_on_nan:
                    bad = (b, value)
                    break
                with quiet_overflow(scaler):
                    scaler.scale(loss if weight == 1.0 else loss * weight).backward()
                if shards is not None:
                    shards.reducer.sync_gradients()
                scaler.step(opt)  # opt.step(), skipped on inf/NaN gradients under fp16
                scaler.update()
                total += value * share
                count += share
                if shards is None:
                    runner.metric_sums(yb, pred, sums)
                logs = {"loss": total / count, **{k: s / max(c, 1) for k, (s, c) in sums.items()}}
                cbs.on_train_batch_end(b, logs)
                if model.stop_training:
                    break
            if bad is not None:
                print(
                    f"fit: stopped at epoch {epoch + 1}, batch {bad[0] + 1} of {steps}: the loss "
                    f"is {bad[1]} (the weights are from before that batch; try a lower learning "
                    "rate, or check x and y for huge values)",
                    file=sys.stderr,
                )
                # every quantity gets a value for this epoch (NaN), so the lists stay aligned
                nan_logs = {k: math.nan for k in [*logged, *history.history]}
                history.record(epoch, nan_logs | {"loss": bad[1]})
                model.stop_training = True
                break
            if shards is not None:  # BatchNorm statistics: rank 0's, before anything reads them
                shards.reducer.broadcast_buffers_now()
            logs = {
                "loss": total / max(count, 1),
                **{k: s / max(c, 1) for k, (s, c) in sums.items()},
            }
            if val is not None:
                vlogs = runner.evaluate(val[0], val[1], batch_size)
                logs.update({f"val_{k}": v for k, v in vlogs.items()})
            if scheduler is not None:
                if _wants_metric(scheduler):
                    scheduler.step(logs.get("val_loss", logs["loss"]))
                else:
                    scheduler.step()
            if log_lr:
                logs["lr"] = float(opt.param_groups[0]["lr"])
            cbs.on_epoch_end(epoch, logs)
            if model.stop_training:
                break
    finally:
        cbs.on_train_end({})
    return history


def _wants_metric(scheduler: Any) -> bool:
    import inspect

    try:
        params = inspect.signature(scheduler.step).parameters
    except (TypeError, ValueError):
        return False
    return "metrics" in params or type(scheduler).__name__ == "ReduceLROnPlateau"


def evaluate(
    model: Module, x: Any, y: Any, batch_size: int = 32, verbose: int = 0
) -> dict[str, float]:
    """Loss and metrics over (x, y) in eval mode: {"loss": ..., "accuracy": ...}."""
    who = "evaluate"
    cfg = _compiled(model, who)
    batch_size = _whole(batch_size, "batch_size", who, 1)
    xh, yh = _as_host(x, "x", who), _as_host(y, "y", who)
    _check_lengths(xh, yh, who)
    if len(xh) == 0:
        raise ValueError("evaluate: x is empty")
    _check_finite(xh, "x", who, _columns(x))
    _check_finite(yh, "y", who, _columns(y))
    device, dtype = _model_device_dtype(model)
    xt = _to_device(xh, device, dtype)
    out_shape = _build(model, xt, who)
    yt = _prepare_targets(cfg.loss, yh.numpy() if isinstance(yh, Tensor) else yh, out_shape, who)
    logs = _Runner(model, cfg, out_shape).evaluate(xt, _to_device(yt, device, dtype), batch_size)
    if verbose:
        print("evaluate: " + " - ".join(f"{k}: {v:.4f}" for k, v in logs.items()))
    return logs


def predict(model: Module, x: Any, batch_size: int = 32, verbose: int = 0) -> np.ndarray:
    """The model's outputs for x (eval mode, no graph) as a NumPy array."""
    who = "predict"
    batch_size = _whole(batch_size, "batch_size", who, 1)
    xh = _as_host(x, "x", who)
    _check_finite(xh, "x", who, _columns(x))
    device, dtype = _model_device_dtype(model)
    xt = _to_device(xh, device, dtype)
    _build(model, xt, who)
    was_training = model.training
    model.eval()
    outs = []
    try:
        with no_grad():
            for start in range(0, len(xt), batch_size):
                outs.append(model(xt[start : start + batch_size]).numpy())
    finally:
        model.train(was_training)
    return np.concatenate(outs) if outs else np.zeros((0,))


# ---- summary -------------------------------------------------------------------------------------


def _count(module: Module, recurse: bool = True) -> tuple[int, int]:
    trainable = sum(p.numel() for p in module.parameters(recurse) if p.requires_grad)
    frozen = sum(p.numel() for p in module.parameters(recurse) if not p.requires_grad)
    if recurse:
        frozen += sum(b.numel() for _, b in module.named_buffers())
    else:
        frozen += sum(b.numel() for b in module._buffers.values() if b is not None)
    return trainable, frozen


def _input_shape(model: Module) -> tuple | None:
    shape = model.__dict__.get("_keras_input_shape")
    if shape is not None:
        return tuple(shape)
    for m in model.modules():
        s = getattr(m, "input_shape", None)
        if s is not None:
            return tuple(s)
    return None


def _build_from_input_shape(model: Module) -> None:
    """Create lazy layers' weights now when the first layer has input_shape (as Keras does)."""
    shape = _input_shape(model)
    if shape is None or not _has_lazy(model):
        return
    device, dtype = _model_device_dtype(model)
    _build(model, gnn.zeros((1, *shape), dtype=dtype, device=device), "build")


def _shape_text(out: Any) -> str:
    """(None, 8) for a Tensor of shape (B, 8); tuples of outputs (RNNs) shape by shape."""
    if isinstance(out, Tensor):
        return (
            "("
            + ", ".join(["None", *map(str, out.shape[1:])])
            + ("," if out.ndim == 1 else "")
            + ")"
        )
    if isinstance(out, (tuple, list)):
        return "[" + ", ".join(_shape_text(o) for o in out) + "]"
    return "?"


def _output_shapes(model: Module, layers: list[Module], shape: tuple) -> dict[int, str]:
    """id(layer) -> its output shape, from one zero sample through the model.

    Each layer's forward is wrapped for the duration of one call (so this works for any Module,
    not only Sequential); a layer called twice reports its last call.
    """
    shapes: dict[int, str] = {}

    def wrap(m: Module) -> None:
        inner = m.forward

        def forward(*args: Any, **kwargs: Any) -> Any:
            out = inner(*args, **kwargs)
            shapes[id(m)] = _shape_text(out)
            return out

        object.__setattr__(m, "forward", forward)

    device, dtype = _model_device_dtype(model)
    was = model.training
    model.eval()
    for m in layers:
        if m is not model:
            wrap(m)
    try:
        with no_grad():
            model(gnn.zeros((1, *shape), dtype=dtype, device=device))
    except Exception:  # noqa: BLE001  (shapes are a nicety; the counts still print)
        shapes = {}
    finally:
        for m in layers:
            m.__dict__.pop("forward", None)
        model.train(was)
    return shapes


def summary(model: Module, print_fn: Any = print) -> str:
    """Print (and return) a table of layers, output shapes and parameter counts."""
    _build_from_input_shape(model)
    if _has_lazy(model):
        raise RuntimeError(
            "summary: the model is not built yet; give the first layer "
            "input_shape=(features,), or call fit/predict once"
        )
    rows = []
    shape = _input_shape(model)
    children = list(model.named_children()) or [("", model)]
    out_shapes = _output_shapes(model, [m for _, m in children], shape) if shape else {}
    for name, m in children:
        t, f = _count(m)
        label = f"{name} ({type(m).__name__})" if name else type(m).__name__
        rows.append((label, out_shapes.get(id(m), "?"), f"{t + f:,}"))
    total_t, total_f = _count(model)
    w0 = max(len("Layer (type)"), *(len(r[0]) for r in rows)) + 2
    w1 = max(len("Output Shape"), *(len(r[1]) for r in rows)) + 2
    line = "=" * (w0 + w1 + 12)
    text = [
        f'Model: "{type(model).__name__}"',
        line,
        f"{'Layer (type)':<{w0}}{'Output Shape':<{w1}}{'Param #':>10}",
        line,
    ]
    text += [f"{a:<{w0}}{b:<{w1}}{c:>10}" for a, b, c in rows]
    text += [
        line,
        f"Total params: {total_t + total_f:,}",
        f"Trainable params: {total_t:,}",
        f"Non-trainable params: {total_f:,}",
        line,
    ]
    out = "\n".join(text)
    if print_fn is not None:
        print_fn(out)
    return out


def attach(cls: type = Module) -> None:
    """Give every Module Keras's methods: compile, fit, evaluate, predict, summary."""
    cls.compile = compile
    cls.fit = fit
    cls.evaluate = evaluate
    cls.predict = predict
    cls.summary = summary
