"""gnn.onnx.export: trace a model's forward pass, convert every op, check and save the graph.

Dynamic axes. Each op records concrete sizes (a Reshape its target shape, a slice its bounds), so
the model is traced once as given and once more per dynamic-axis label with that axis one longer.
A setting that moves between the traces is solved as c * prod(label ** e) and computed in the
graph from the inputs' runtime shapes (Shape -> Gather -> Mul -> Concat); constants whose shape
moves are rebuilt at runtime when they are uniform (zeros) or a causal mask. One more trace with
the inputs' values reversed catches constants computed from input values outside the traced ops
(comparisons, masks): those would be frozen into the graph, so export refuses them.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gnn import autograd, config
from gnn.nn.module import Module
from gnn.ops import elementwise, unary
from gnn.tensor import Tensor

INT_MAX = 2**63 - 1


class ExportError(RuntimeError):
    """The model cannot be exported as traced (an op without a converter, a changing constant)."""


# ---- tracing -------------------------------------------------------------------------------------


@dataclass
class Record:
    """One Function application seen during a trace."""

    fn: Any
    inputs: tuple
    output: Tensor
    where: str  # the layer it ran in, e.g. "transformer.h.0.attn (CausalSelfAttention)"


@dataclass
class Trace:
    """The ops of one forward pass, its input tensors and its (flattened) output tensors."""

    records: list[Record]
    inputs: list[Tensor]
    outputs: list[Tensor]
    keep: list = field(default_factory=list)  # holds every traced tensor so ids stay unique


def _flatten_outputs(out: Any, what: str = "output") -> list[Tensor]:
    """The Tensors of a forward's result in order (tuples and lists flattened, None skipped)."""
    if out is None:
        return []
    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        flat: list[Tensor] = []
        for o in out:
            flat += _flatten_outputs(o, what)
        return flat
    raise ExportError(f"export: the model's {what} holds a {type(out).__name__}; expected Tensors")


class Compare:
    """A comparison (==, <, ...) in a trace: gnn runs them without a Function (no gradient)."""

    def __init__(self, name: str) -> None:
        self.name = name  # NumPy's ufunc name: equal, not_equal, less, ...


class Rounding(Compare):
    """sign, floor, ceil, round, isnan, isfinite in a trace (no Function either: no gradient)."""


def trace(model: Module, inputs: list[Tensor]) -> Trace:
    """Run model(*inputs) once under no_grad, recording every Function and the layer it ran in.

    Comparisons and the rounding ops run without a Function; they are recorded too (Compare,
    Rounding) by wrapping gnn.ops.elementwise._compare and gnn.ops.unary._no_grad for the length
    of the pass: padding masks are made from the inputs with `ids == pad`.
    """
    if autograd.on_apply is not None:
        raise ExportError("export: another trace is already running (export is not reentrant)")
    records: list[Record] = []
    where = ["<model>"]

    def record(fn: Any, args: tuple, result: Tensor) -> None:
        records.append(Record(fn, args, result, where[-1]))

    compare = elementwise._compare

    def traced_compare(name: str, a: Any, b: Any) -> Tensor:
        out = compare(name, a, b)
        pa, pb = elementwise.pair(a, b)  # Python numbers become constants, as in _compare
        args = (a if isinstance(a, Tensor) else pa, b if isinstance(b, Tensor) else pb)
        record(Compare(name), args, out)
        return out

    no_grad_op = unary._no_grad

    def traced_no_grad(name: str, x: Tensor) -> Tensor:
        out = no_grad_op(name, x)
        record(Rounding(name), (x,), out)
        return out

    patched = []
    for name, mod in model.named_modules():
        label = f"{name or '<root>'} ({type(mod).__name__})"
        original = mod.forward

        def forward(*a: Any, _orig: Any = original, _label: str = label, **k: Any) -> Any:
            where.append(_label)
            try:
                return _orig(*a, **k)
            finally:
                where.pop()

        # An instance attribute shadows the class's forward for Module.__call__ (trace only).
        mod.__dict__["forward"] = forward
        patched.append(mod)
    autograd.on_apply = record
    elementwise._compare, unary._no_grad = traced_compare, traced_no_grad
    try:
        with config.no_grad():
            out = model(*inputs)
    finally:
        autograd.on_apply = None
        elementwise._compare, unary._no_grad = compare, no_grad_op
        for mod in patched:
            mod.__dict__.pop("forward", None)
    outputs = _flatten_outputs(out)
    if not outputs:
        raise ExportError("export: the model returned no Tensor")
    return Trace(records, list(inputs), outputs, keep=[out])


# ---- arguments -----------------------------------------------------------------------------------


def _as_inputs(args: Any) -> list[Tensor]:
    if isinstance(args, (Tensor, np.ndarray)):
        args = (args,)
    if not isinstance(args, (tuple, list)) or not args:
        raise TypeError(
            "export: args must be a Tensor or a non-empty tuple of Tensors (the forward's inputs)"
        )
    out = []
    for i, a in enumerate(args):
        if isinstance(a, np.ndarray):
            a = Tensor(a)
        if not isinstance(a, Tensor):
            raise TypeError(f"export: args[{i}] is a {type(a).__name__}; expected a Tensor")
        if a.device.type != "cpu":
            a = a.cpu()
        out.append(a)
    return out


def _dynamic_labels(
    dynamic_axes: Any, input_names: list[str], output_names: list[str], inputs: list[Tensor]
) -> tuple[dict[tuple[int, int], str], dict[tuple[int, int], str]]:
    """({(input index, axis): label}, {(output index, axis): label}) from PyTorch's format."""
    ins: dict[tuple[int, int], str] = {}
    outs: dict[tuple[int, int], str] = {}
    if not dynamic_axes:
        return ins, outs
    if not isinstance(dynamic_axes, dict):
        raise TypeError(
            "export: dynamic_axes must be a dict {name: {axis: label}} or {name: [axes]}"
        )
    for name, axes in dynamic_axes.items():
        if name in input_names:
            k, table, ndim = input_names.index(name), ins, inputs[input_names.index(name)].ndim
        elif name in output_names:
            k, table, ndim = output_names.index(name), outs, None
        else:
            raise ValueError(
                f"export: dynamic_axes names {name!r}, which is neither an input "
                f"({', '.join(input_names)}) nor an output ({', '.join(output_names)})"
            )
        if isinstance(axes, dict):
            pairs = list(axes.items())
        elif isinstance(axes, (list, tuple)):
            pairs = [(a, f"{name}_dim{a}") for a in axes]
        else:
            raise TypeError(f"export: dynamic_axes[{name!r}] must be a dict or a list of axes")
        for axis, label in pairs:
            if not isinstance(axis, int) or (ndim is not None and not -ndim <= axis < ndim):
                raise ValueError(f"export: dynamic_axes[{name!r}]: axis {axis!r} is out of range")
            table[(k, axis % ndim if ndim else axis)] = str(label)
    return ins, outs


def _grown(x: Tensor, axis: int, by: int) -> Tensor:
    """x with `axis` longer by `by` (the first rows repeated) or shorter (by < 0)."""
    data = x.numpy()
    n = data.shape[axis]
    if by < 0:
        data = np.take(data, np.arange(n + by), axis=axis)
    else:
        data = np.concatenate([data, np.take(data, np.arange(by) % max(n, 1), axis=axis)], axis)
    return Tensor(np.ascontiguousarray(data))


def _reversed_values(x: Tensor) -> Tensor:
    """x with its values in reverse order (same shape and dtype, same set of values)."""
    data = x.numpy()
    return Tensor(np.ascontiguousarray(data.reshape(-1)[::-1].reshape(data.shape)))


# ---- export --------------------------------------------------------------------------------------


def export(
    model: Module,
    args: Any,
    f: Any,
    input_names: list[str] | None = None,
    output_names: list[str] | None = None,
    dynamic_axes: dict | None = None,
    opset_version: int = 17,
    check: bool = True,
) -> Any:
    """Export `model` to ONNX by tracing `model(*args)`; writes `f` and returns the ModelProto.

    f: a path or a binary file object. input_names / output_names name the graph's inputs and
    (flattened) outputs. dynamic_axes as in PyTorch: {"input": {0: "batch"}} or {"input": [0]};
    axes sharing a label share one size. The model runs in eval mode during the trace (dropout
    off, batch norm on running statistics) and gets its own mode back after. check runs
    onnx.checker.check_model(full_check=True).
    """
    try:
        import onnx
    except ImportError as exc:
        raise ImportError(
            "gnn.onnx.export needs the onnx package: pip install 'gnn[onnx]'"
        ) from exc
    from gnn.onnx.convert import build_graph

    if not isinstance(model, Module):
        raise TypeError(f"export: model must be a gnn.nn.Module, got {type(model).__name__}")
    if not isinstance(opset_version, int) or not 17 <= opset_version <= 21:
        raise ValueError(
            f"export: opset_version must be an int from 17 to 21, got {opset_version!r}"
        )
    inputs = _as_inputs(args)
    if any(p.device.type != "cpu" for p in model.parameters()):
        raise ValueError("export: move the model to the CPU first (model.cpu())")
    input_names = list(input_names or [])
    if len(input_names) > len(inputs):
        raise ValueError(
            f"export: {len(input_names)} input_names for {len(inputs)} inputs: {input_names}"
        )
    input_names += [
        "input" if i == 0 else f"input_{i}" for i in range(len(input_names), len(inputs))
    ]
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        base = trace(model, inputs)
        output_names = list(output_names or [])
        if len(output_names) > len(base.outputs):
            raise ValueError(
                f"export: {len(output_names)} output_names for {len(base.outputs)} outputs"
            )
        output_names += [
            "output" if i == 0 else f"output_{i}"
            for i in range(len(output_names), len(base.outputs))
        ]
        if len(set(input_names + output_names)) != len(input_names) + len(output_names):
            raise ValueError("export: input and output names must all differ")
        in_labels, out_labels = _dynamic_labels(dynamic_axes, input_names, output_names, inputs)
        traces, symbols = [base], []
        for label in dict.fromkeys(in_labels.values()):
            axes = [(k, a) for (k, a), lab in in_labels.items() if lab == label]
            sizes = {inputs[k].shape[a] for k, a in axes}
            if len(sizes) != 1:
                raise ValueError(
                    f"export: the axes labelled {label!r} have different sizes {sorted(sizes)} "
                    "in the example inputs"
                )
            n = sizes.pop()
            variant, grown_by = None, 0
            for by in (1, -1):  # longer, else shorter (a model may cap a length)
                if n + by < 1:
                    continue
                moved = [
                    _grown(t, next(a for kk, a in axes if kk == k), by)
                    if any(kk == k for kk, _ in axes)
                    else t
                    for k, t in enumerate(inputs)
                ]
                try:
                    variant, grown_by = trace(model, moved), by
                    break
                except ExportError:
                    raise
                except Exception:  # the other direction may work
                    continue
            if variant is None:
                raise ExportError(
                    f"export: the model does not run with dynamic axis {label!r} of size "
                    f"{n + 1} or {n - 1}; export it with that axis fixed"
                )
            traces.append(variant)
            symbols.append((label, axes, n, n + grown_by))
        # values reversed: a constant that changes was computed from the inputs' values
        try:
            probe = trace(model, [_reversed_values(t) for t in inputs])
        except ExportError:
            raise
        except Exception as exc:  # a model may demand ordered values
            warnings.warn(
                f"export: the model fails on its inputs with their values reversed ({exc}); "
                "constants computed from input values cannot be caught",
                stacklevel=2,
            )
            probe = base
        graph = build_graph(
            onnx, traces, probe, symbols, input_names, output_names, in_labels, out_labels,
            model, opset_version,
        )  # fmt: skip
    finally:
        for m, mode in modes:
            object.__setattr__(m, "training", mode)
    proto = onnx.helper.make_model(
        graph,
        opset_imports=[onnx.helper.make_opsetid("", opset_version)],
        producer_name="gnn",
    )
    # onnxruntime reads IR versions up to what its onnx knows; pin one that opset 17-21 needs.
    proto.ir_version = min(proto.ir_version, 10)
    if check:
        onnx.checker.check_model(proto, full_check=True)
    data = proto.SerializeToString()
    if isinstance(f, (str, os.PathLike)):
        with open(f, "wb") as fh:
            fh.write(data)
    elif isinstance(f, io.IOBase) or hasattr(f, "write"):
        f.write(data)
    else:
        raise TypeError(f"export: f must be a path or a binary file object, got {type(f).__name__}")
    return proto
