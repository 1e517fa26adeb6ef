"""What compile() settles: the optimizer to build, the loss (fused with the last activation where
it can be), the metrics, and the running sums an epoch's logs are made of."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from gnn import functional as F
from gnn.config import no_grad
from gnn.nn.activation import Sigmoid, Softmax
from gnn.nn.container import Sequential
from gnn.nn.module import Module
from gnn.tensor import Tensor
from gnn.train import metrics as metrics_mod
from gnn.train.losses import Loss

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
        kwargs = dict(self.kwargs)
        kwargs.setdefault("lr", default_lr)
        return getattr(optim, cls_name)(params, **kwargs)

    def __repr__(self) -> str:
        return f"OptimizerSpec({self.name!r}, {self.kwargs})"


def optimizer_spec(optimizer: Any) -> Any:
    """compile's optimizer argument, checked: a name becomes an OptimizerSpec."""
    if isinstance(optimizer, str):
        return OptimizerSpec(optimizer)
    if isinstance(optimizer, OptimizerSpec) or hasattr(optimizer, "step") or callable(optimizer):
        return optimizer
    raise TypeError(
        f"compile: optimizer must be a name, an optimizer or a callable, "
        f"got {type(optimizer).__name__}"
    )


def build_optimizer(spec: Any, model: Module) -> Any:
    """The optimizer over the model's trainable parameters, from what compile was given."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise RuntimeError("fit: the model has no trainable parameters")
    if isinstance(spec, OptimizerSpec):
        return spec.build(params)
    if hasattr(spec, "step") and hasattr(spec, "param_groups"):
        return spec
    return spec(params)


@dataclass
class Compiled:
    """compile()'s choices."""

    optimizer: Any
    loss: Loss
    metrics: list[Any] = field(default_factory=list)


# ---- the loss, fused with the last activation ---------------------------------------------------


def _final_activation(model: Module) -> tuple[str | None, str | None]:
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


class LossHead:
    """The loss of a batch and the predictions the metrics read.

    When the model ends in the activation the loss can fuse (sigmoid with binary cross-entropy,
    softmax with a categorical one), the loss is computed from the logits: same value, stable.
    """

    def __init__(self, model: Module, body: Module, loss: Loss) -> None:
        self.model, self.body, self.loss = model, body, loss
        act, how = _final_activation(body)
        self.act = act
        fusable = act is not None and not loss.from_logits and loss.fused_activation == act
        self.fuse = how if fusable else None
        self.penalties = penalties(body)  # found once: walking the modules every batch is slow

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """(loss with the regularizers' penalty, predictions as the model outputs them)."""
        if self.fuse is None:
            out = self.model(x)
            loss, pred = self.loss(y, out), out.detach()
        else:
            layers = list(self.body)
            for m in layers[:-1]:
                x = m(x)
            logits = layers[-1].pre_activation(x) if self.fuse == "pre_activation" else x
            loss = self.loss.from_logits_loss(y, logits)
            with no_grad():
                z = logits.detach()
                pred = F.sigmoid(z) if self.act == "sigmoid" else F.softmax(z, -1)
        for reg, p in self.penalties:
            loss = loss + reg(p)
        return loss, pred


def penalties(model: Module) -> list[tuple[Any, Tensor]]:
    """(regularizer, weight) for every kernel and bias regularizer in the model's layers."""
    found = []
    for m in model.modules():
        for attr, pname in (("kernel_regularizer", "weight"), ("bias_regularizer", "bias")):
            reg = getattr(m, attr, None)
            p = m._parameters.get(pname)
            if reg is not None and p is not None:
                found.append((reg, p))
    return found


# ---- an epoch's running sums --------------------------------------------------------------------


class NonFiniteLoss(Exception):
    """A batch's loss is NaN or infinite: fit stops before that batch's update."""

    def __init__(self, value: float) -> None:
        super().__init__(value)
        self.value = value


class Tally:
    """The loss and metric sums of one pass (weighted by samples), and their means as logs.

    Under mpiexec (`shards`) every batch's numbers are summed over the ranks first, so every
    rank logs, and stops on a NaN loss, alike.
    """

    def __init__(
        self, metrics: list[tuple[str, Any]], stop_on_nan: bool = False, shards: Any = None
    ) -> None:
        self.metrics, self.stop_on_nan, self.shards = metrics, stop_on_nan, shards
        self.total, self.count = 0.0, 0
        self.sums: dict[str, list[float]] = {}

    def add(self, loss: Tensor, y: Tensor, pred: Tensor, share: int) -> float:
        """Count one batch of `share` samples; returns its loss. Raises NonFiniteLoss (with
        stop_on_nan) before anything is counted, so the caller can skip the update."""
        value = float(loss.item())
        if pred.dtype.itemsize == 2:  # float16 / bfloat16: metrics read float32 predictions
            pred = pred.float()
        if self.shards is not None:  # the batch's loss and metric sums over all ranks
            value, share = self.shards.combine(self, y, pred, value, share)
        if self.stop_on_nan and not math.isfinite(value):
            raise NonFiniteLoss(value)
        self.total += value * share
        self.count += share
        if self.shards is None:
            self.metric_sums(y, pred, self.sums)
        return value

    def metric_sums(self, y: Tensor, pred: Tensor, sums: dict[str, list[float]]) -> None:
        """Add each metric's (sum, count) over the batch to `sums`."""
        for name, fn in self.metrics:
            s, c = fn(y, pred)
            acc = sums.setdefault(name, [0.0, 0])
            acc[0] += s
            acc[1] += c

    def logs(self) -> dict[str, float]:
        """{"loss": mean, metric: mean, ...} so far."""
        logs = {"loss": self.total / max(self.count, 1)}
        logs.update({k: s / max(c, 1) for k, (s, c) in self.sums.items()})
        return logs


def bound_metrics(compiled: Compiled, out_shape: tuple) -> list[tuple[str, Any]]:
    """(log name, function) of each compiled metric, picked for the loss and output width."""
    width = out_shape[-1] if len(out_shape) > 1 else 1
    return [metrics_mod.get_metric(m, compiled.loss.kind, width) for m in compiled.metrics]
