"""What fit / evaluate / predict do to their inputs before the model sees them.

Checks (clear errors before any training), targets shaped for the loss, the validation split,
placement on the model's device, and batches in a shuffled or fixed order. Inputs may be arrays,
lists, pandas frames, Tensors, a gnn.data Dataset of (x, y) samples, or a DataLoader of (x, y)
batches.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from gnn import config, creation, functional
from gnn.backend import parse_device
from gnn.config import no_grad
from gnn.nn.module import Module
from gnn.tensor import Tensor
from gnn.train.losses import Loss

# one batch as fit serves it: (x, y, samples this process trains on, weight of its loss)
Batch = tuple[Tensor, Tensor, int, float]


def whole(value: Any, name: str, who: str, low: int) -> int:
    """`value` as a Python int (NumPy integers too), or a ValueError naming `who` and `name`."""
    if (
        isinstance(value, (bool, np.bool_))
        or not isinstance(value, (int, np.integer))
        or (value < low)
    ):
        kind = "a non-negative" if low == 0 else "a positive"
        raise ValueError(f"{who}: {name} must be {kind} integer, got {value!r}")
    return int(value)


def placement(model: Module) -> tuple[Any, Any]:
    """(device, dtype) of the model's weights, or where its lazy layers will build them."""
    for p in model.parameters():
        return p.device, p.dtype
    for m in model.modules():
        where = m.lazy_placement() if hasattr(m, "lazy_placement") else None
        if where is not None:
            return where
    return parse_device(None), config.get_default_dtype()


# ---- checks --------------------------------------------------------------------------------------


def _columns(a: Any) -> list[str] | None:
    """Column labels of a pandas DataFrame (to name them in errors), else None."""
    cols = getattr(a, "columns", None)
    if cols is None or isinstance(a, (np.ndarray, Tensor)):
        return None
    return [str(c) for c in cols]


def _as_host(a: Any, name: str, who: str) -> Any:
    """Tensors stay where they are; lists, frames and arrays become NumPy, checked numeric."""
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


def _check_finite(a: Any, name: str, who: str, columns: list[str] | None) -> None:
    """A clear error for NaN or infinite values, naming the columns (of 2-D data) and rows."""
    if isinstance(a, Tensor):  # checked on its device; copied to the host only to explain
        if a.dtype.kind != "f" or bool(functional.isfinite(a).all()):
            return
        a = a.numpy()
    data = a
    if data.dtype.kind != "f" or data.size == 0:
        return
    for what, bad in (("NaN", np.isnan(data)), ("an infinite value", np.isinf(data))):
        if not bool(bad.any()):
            continue
        per_row = bad.reshape(len(data), -1).any(axis=1)
        if data.ndim == 2:
            cols = np.nonzero(bad.any(axis=0))[0].tolist()
            shown = [f"{c} ({columns[c]!r})" if columns and c < len(columns) else str(c)
                     for c in cols[:10]]  # fmt: skip
            more = f" and {len(cols) - 10} more" if len(cols) > 10 else ""
            where = f"column{'s' if len(cols) > 1 else ''} {', '.join(shown)}{more}"
        else:
            where = f"{int(bad.sum())} element(s)"
        fix = ("fill or drop missing values first" if what == "NaN"
               else "clip or drop such values (they would turn the weights into NaN)")  # fmt: skip
        raise ValueError(
            f"{who}: {name} contains {what} in {where} ({int(per_row.sum())} row(s), first at "
            f"row {int(np.nonzero(per_row)[0][0])}); {fix}"
        )


def checked(x: Any, y: Any, who: str, names: tuple[str, str] = ("x", "y")) -> tuple[Any, Any]:
    """(x, y) as host arrays or Tensors, after every check on values and lengths."""
    xh = _as_host(x, names[0], who)
    yh = None if y is None else _as_host(y, names[1], who)
    if yh is not None and len(xh) != len(yh):
        raise ValueError(
            f"{who}: {names[0]} has {len(xh)} samples but {names[1]} has {len(yh)}; they must match"
        )
    if len(xh) == 0 and who != "predict":
        raise ValueError(f"{who}: {names[0]} is empty")
    _check_finite(xh, names[0], who, _columns(x))
    if yh is not None:
        _check_finite(yh, names[1], who, _columns(y))
    return xh, yh


def to_device(a: Any, device: Any, dtype: Any) -> Tensor:
    """A detached Tensor on `device`; floating (and bool) data take the model's dtype."""
    t = a if isinstance(a, Tensor) else creation.from_numpy(np.ascontiguousarray(a))
    if t.dtype.kind in "fb" and t.dtype != dtype:
        t = t.to(dtype=dtype)
    return t.to(device).detach()


def build(model: Module, x: Tensor, who: str, record: bool = True, name: str = "x") -> tuple:
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
        model.__dict__["_keras_input_shape"] = tuple(x.shape[1:])
    return tuple(out.shape)


def targets(loss: Loss, y: Any, out_shape: tuple, who: str) -> np.ndarray:
    """y checked against the loss and the model's output, reshaped to fit (on the host)."""
    ya = y.numpy() if isinstance(y, Tensor) else y
    width = int(np.prod(out_shape[1:])) if len(out_shape) > 1 else 1
    n = len(ya)
    if loss.kind == "sparse":
        return _sparse_labels(ya, out_shape, who)
    if loss.kind == "categorical" and (ya.ndim != 2 or ya.shape[1] != width):
        hint = (" (y looks like integer labels: use loss='sparse_categorical_crossentropy')"
                if ya.ndim == 1 else "")  # fmt: skip
        raise ValueError(
            f"{who}: categorical_crossentropy needs one-hot y of shape (N, {width}) "
            f"for a model with {width} outputs, got {ya.shape}{hint}"
        )
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


def _sparse_labels(ya: np.ndarray, out_shape: tuple, who: str) -> np.ndarray:
    n = len(ya)
    labels = ya.reshape(n, -1) if ya.ndim > 1 else ya
    if labels.ndim == 2 and labels.shape[1] != 1:
        raise ValueError(
            f"{who}: sparse_categorical_crossentropy needs integer labels of shape "
            f"(N,), got y of shape {ya.shape}; for one-hot y use loss='categorical_crossentropy'"
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


def _classes(loss: Loss, a: Any) -> set | None:
    a = a.numpy() if isinstance(a, Tensor) else np.asarray(a)
    if loss.kind == "categorical":
        return set(np.argmax(a, axis=-1).tolist())
    if a.dtype.kind == "f" and not np.all(a == np.round(a)):
        return None  # soft targets (probabilities): no classes to count
    return set(a.astype(np.int64).reshape(-1).tolist())


def class_coverage_warning(loss: Loss, y_train: Any, y_val: Any, split: bool) -> None:
    """Warn when a class has samples on one side of the train/validation split only."""
    if loss.kind not in ("binary", "sparse", "categorical"):
        return
    tr, va = _classes(loss, y_train), _classes(loss, y_val)
    if tr is None or va is None or tr == va:
        return
    parts = []
    if tr - va:
        parts.append(f"class(es) {sorted(tr - va)} missing from the validation data")
    if va - tr:
        parts.append(f"class(es) {sorted(va - tr)} missing from the training data")
    hint = (" (validation_split takes the LAST samples: shuffle x and y before fit if they are "
            "sorted)" if split else "")  # fmt: skip
    warnings.warn("fit: " + "; ".join(parts) + hint, stacklevel=4)


# ---- batches -------------------------------------------------------------------------------------


class ArrayData:
    """Samples held on the model's device, served in batches (gathered there)."""

    def __init__(self, x: Tensor, y: Tensor | None, batch_size: int) -> None:
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self) -> int:
        return len(self.x)

    @property
    def steps(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def batches(self, shuffle: bool = False, shards: Any = None) -> Iterator[Batch]:
        """One epoch of (x, y, share, weight); under mpiexec each rank's share of every batch."""
        x, y, size = self.x, self.y, self.batch_size
        assert y is not None, "batches need targets"
        n, be = len(x), x.backend
        order = be.permutation(n) if shuffle else None
        if shards is not None:  # every rank splits the same batches: rank 0's order
            order = shards.same_order(order) if shuffle else be.asarray(np.arange(n))
        for start in range(0, n, size):
            part: Any = slice(start, start + size)  # in order: slices, which are views
            share, weight = min(size, n - start), 1.0
            if order is not None:
                part = order[part]
                if shards is not None:
                    part, share, weight = shards.shard(part)
            yield _rows(x, part), _rows(y, part), share, weight

    def inputs(self) -> Iterator[Tensor]:
        """The x batches in order (for predict)."""
        for start in range(0, len(self.x), self.batch_size):
            yield self.x[start : start + self.batch_size]


def _rows(t: Tensor, part: Any) -> Tensor:
    """t's rows at `part` (a slice or an index array on t's device): a plain gather on the
    arrays, no graph (the data never needs one), as cheap as indexing them directly."""
    return Tensor.wrap(t.array[part], t.backend)


class LoaderData:
    """(x, y) batches from a DataLoader (its own order), checked and moved batch by batch."""

    def __init__(
        self, loader: Any, loss: Loss | None, out_shape: tuple, device: Any, dtype: Any
    ) -> None:
        self.loader, self.loss, self.out_shape = loader, loss, out_shape
        self.device, self.dtype = device, dtype

    def __len__(self) -> int:
        return len(self.loader.dataset)

    @property
    def steps(self) -> int | None:
        try:
            return len(self.loader)
        except TypeError:
            return None

    def batches(self, shuffle: bool = False, shards: Any = None) -> Iterator[Batch]:
        """One epoch of the loader's batches (`shuffle` is the loader's own setting)."""
        if shards is not None:
            raise ValueError(
                "fit: under mpiexec pass arrays (fit splits every batch over the ranks), "
                "not a DataLoader"
            )
        for batch in self.loader:
            x, y = pair(batch, "fit", "a DataLoader batch")
            xh, yh = checked(x, y, "fit (DataLoader)")
            assert self.loss is not None  # a loader for predict serves inputs() only
            yt = targets(self.loss, yh, self.out_shape, "fit (DataLoader)")
            xb = to_device(xh, self.device, self.dtype)
            yield xb, to_device(yt, self.device, self.dtype), len(xb), 1.0

    def inputs(self) -> Iterator[Tensor]:
        for batch in self.loader:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            yield to_device(_as_host(x, "x", "predict"), self.device, self.dtype)


def pair(item: Any, who: str, what: str) -> tuple[Any, Any]:
    """(x, y) from a dataset sample or loader batch, or a clear error."""
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise ValueError(f"{who}: {what} must be a pair (x, y), got {type(item).__name__}")
    return item[0], item[1]


def _is_loader(a: Any) -> bool:
    return hasattr(a, "dataset") and hasattr(a, "__iter__") and not hasattr(a, "__getitem__")


def _is_dataset(a: Any) -> bool:
    """A map-style dataset of samples (not an array, a list of numbers or a frame)."""
    if isinstance(a, (np.ndarray, Tensor, list, tuple)) or hasattr(a, "to_numpy"):
        return False
    return hasattr(a, "__getitem__") and hasattr(a, "__len__") and not hasattr(a, "shape")


def _materialise(dataset: Any, who: str) -> tuple[Any, Any]:
    """A Dataset of (x, y) samples as two stacked arrays."""
    samples = [pair(dataset[i], who, "a dataset sample") for i in range(len(dataset))]
    xs = [s[0].numpy() if isinstance(s[0], Tensor) else np.asarray(s[0]) for s in samples]
    ys = [s[1].numpy() if isinstance(s[1], Tensor) else np.asarray(s[1]) for s in samples]
    if not xs:
        raise ValueError(f"{who}: the dataset is empty")
    return np.stack(xs), np.stack(ys)


def split_sources(x: Any, y: Any, who: str) -> tuple[Any, Any, Any]:
    """(x, y, loader): a Dataset becomes arrays, a DataLoader stays a loader (y must be None)."""
    if _is_loader(x) or _is_dataset(x):
        if y is not None:
            raise ValueError(f"{who}: with a Dataset or DataLoader as x, leave y out (it is in x)")
        if _is_loader(x):
            return None, None, x
        x, y = _materialise(x, who)
    elif (x is None or y is None) and who != "predict":
        raise ValueError(f"{who}: needs x and y")
    return x, y, None


@dataclass
class FitData:
    """What fit trains on: the batches, the validation batches, the output shape, a note."""

    train: ArrayData | LoaderData
    val: ArrayData | LoaderData | None
    out_shape: tuple
    note: str | None  # "N samples for training, M for validation (...)", for the progress


def for_fit(
    model: Module,
    loss: Loss,
    x: Any,
    y: Any,
    batch_size: int,
    validation_split: float,
    validation_data: Any,
) -> FitData:
    """Check everything, build the model, place the data and split off validation."""
    if not isinstance(validation_split, (int, float)) or not 0.0 <= validation_split < 1.0:
        raise ValueError(f"fit: validation_split must be in [0, 1), got {validation_split!r}")
    x, y, loader = split_sources(x, y, "fit")
    if loader is not None:
        return _loader_fit(model, loss, loader, validation_split, validation_data, batch_size)
    xh, yh = checked(x, y, "fit")
    device, dtype = placement(model)
    x_all = to_device(xh, device, dtype)
    out_shape = build(model, x_all, "fit")
    device, dtype = placement(model)  # lazy layers are built now
    x_all = to_device(x_all, device, dtype)
    y_host = targets(loss, yh, out_shape, "fit")
    n, val, note = len(x_all), None, None
    if validation_data is not None:
        val = _validation(model, loss, validation_data, out_shape, batch_size)
        note = f"{n} samples for training, {len(val)} for validation (validation_data)"
        if isinstance(val, ArrayData):
            class_coverage_warning(loss, y_host, val.y, split=False)
    elif validation_split > 0:
        at = int(n * (1.0 - validation_split))
        if at <= 0 or at >= n:
            raise ValueError(
                f"fit: validation_split={validation_split} of {n} samples leaves "
                f"{at} for training and {n - at} for validation"
            )
        note = (f"{at} samples for training, {n - at} for validation "
                f"(the last {validation_split:.0%}, as Keras takes them)")  # fmt: skip
        class_coverage_warning(loss, y_host[:at], y_host[at:], split=True)
        y_dev = to_device(y_host, device, dtype)
        val = ArrayData(x_all[at:].detach(), y_dev[at:].detach(), batch_size)
        x_all, y_host = x_all[:at].detach(), y_host[:at]
    train = ArrayData(x_all, to_device(y_host, device, dtype), batch_size)
    return FitData(train, val, out_shape, note)


def _validation(
    model: Module, loss: Loss, data: Any, out_shape: tuple, batch_size: int
) -> ArrayData | LoaderData:
    who = "fit (validation_data)"
    if _is_loader(data):
        return LoaderData(data, loss, out_shape, *placement(model))
    if _is_dataset(data):
        data = _materialise(data, who)
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ValueError("fit: validation_data must be a pair (x_val, y_val)")
    xv, yv = checked(data[0], data[1], who, ("x_val", "y_val"))
    device, dtype = placement(model)
    xv = to_device(xv, device, dtype)
    val_shape = build(model, xv, who, record=False, name="x_val")
    if val_shape[1:] != out_shape[1:]:
        raise ValueError(
            f"{who}: the model gives outputs of shape {val_shape[1:]} for x_val but "
            f"{out_shape[1:]} for x"
        )
    yv = targets(loss, yv, out_shape, who)
    return ArrayData(xv, to_device(yv, device, dtype), batch_size)


def _loader_fit(
    model: Module, loss: Loss, loader: Any, split: float, validation_data: Any, batch_size: int
) -> FitData:
    if split:
        raise ValueError("fit: validation_split needs arrays; with a DataLoader, pass "
                         "validation_data")  # fmt: skip
    first = next(iter(loader), None)
    if first is None:
        raise ValueError("fit: the DataLoader is empty")
    x0, y0 = pair(first, "fit", "a DataLoader batch")
    xh, yh = checked(x0, y0, "fit (DataLoader)")
    device, dtype = placement(model)
    out_shape = build(model, to_device(xh, device, dtype), "fit")
    targets(loss, yh, out_shape, "fit (DataLoader)")
    train = LoaderData(loader, loss, out_shape, *placement(model))
    val = None
    if validation_data is not None:
        val = _validation(model, loss, validation_data, out_shape, batch_size)
    return FitData(train, val, out_shape, None)


def for_evaluate(
    model: Module, loss: Loss, x: Any, y: Any, batch_size: int
) -> tuple[ArrayData | LoaderData, tuple]:
    """(checked (x, y) on the model's device, the model's output shape), for evaluate."""
    x, y, loader = split_sources(x, y, "evaluate")
    if loader is not None:
        x0, _ = pair(next(iter(loader)), "evaluate", "a DataLoader batch")
        x0 = to_device(_as_host(x0, "x", "evaluate"), *placement(model))
        out_shape = build(model, x0, "evaluate")
        return LoaderData(loader, loss, out_shape, *placement(model)), out_shape
    xh, yh = checked(x, y, "evaluate")
    device, dtype = placement(model)
    xt = to_device(xh, device, dtype)
    out_shape = build(model, xt, "evaluate")
    yt = targets(loss, yh, out_shape, "evaluate")
    return ArrayData(xt, to_device(yt, device, dtype), batch_size), out_shape


def for_predict(model: Module, x: Any, batch_size: int) -> ArrayData | LoaderData:
    """Checked x on the model's device, for predict."""
    if _is_loader(x):
        return LoaderData(x, None, (), *placement(model))
    if _is_dataset(x):
        x = np.stack([np.asarray(s[0] if isinstance(s, (tuple, list)) else s) for s in x])
    xh, _ = checked(x, None, "predict")
    xt = to_device(xh, *placement(model))
    build(model, xt, "predict")
    return ArrayData(xt, None, batch_size)
