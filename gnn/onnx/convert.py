"""Converters: each gnn op (a Function class in gnn/ops) as ONNX nodes, and the graph builder.

A converter gets an Op (the traced application, in every trace) and returns the name of the ONNX
value holding the op's output. Settings read through Op.static must be the same in every trace;
Op.sizes lets them follow the dynamic axes (see graph.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from gnn.nn.module import Module
from gnn.onnx.export import INT_MAX, Compare, ExportError, Rounding, Trace
from gnn.onnx.graph import Graph
from gnn.ops import (
    attention,
    batch_norm,
    bias_gelu,
    conv,
    dropout,
    elementwise,
    embedding,
    layer_norm,
    linalg,
    reduce,
    rnn,
    shape,
    unary,
)
from gnn.tensor import Tensor

CONVERTERS: dict[type, Callable[[Any], str]] = {}


def converts(*classes: type) -> Callable:
    """Register a converter for Function classes."""

    def register(fn: Callable) -> Callable:
        for cls in classes:
            CONVERTERS[cls] = fn
        return fn

    return register


class Op:
    """One traced op as the converters see it: its Function in every trace, its inputs' values."""

    def __init__(self, ctx: Builder, index: int) -> None:
        self.ctx, self.g = ctx, ctx.g
        self.recs = [t.records[index] for t in ctx.traces]
        self.probe = ctx.probe.records[index]
        self.fn = self.recs[0].fn
        self.name = type(self.fn).__name__
        self.where = self.recs[0].where

    def error(self, message: str) -> ExportError:
        return ExportError(f"export: {self.name} in layer {self.where}: {message}")

    @property
    def n_inputs(self) -> int:
        return len(self.recs[0].inputs)

    def x(self, i: int) -> str:
        """The ONNX value of input i."""
        return self.ctx.value(self, i)

    def shape(self, i: int = 0) -> tuple:
        return tuple(self.recs[0].inputs[i].shape)

    def dtype(self, i: int = 0) -> np.dtype:
        return self.recs[0].inputs[i].dtype

    def out_dtype(self) -> np.dtype:
        return self.recs[0].output.dtype

    def static(self, get: Callable[[Any], Any], what: str) -> Any:
        """A setting that must not change with the dynamic axes."""
        values = [get(r.fn) for r in self.recs]
        for v in values[1:]:
            if not _same(v, values[0]):
                raise self.error(f"{what} changes with the dynamic axes ({values[0]!r} vs {v!r})")
        return values[0]

    def sizes(self, get: Callable[[Any], Any], what: str) -> list:
        """A list of sizes per trace, solved to ints and Syms."""
        return self.g.sizes([list(get(r.fn)) for r in self.recs], f"{self.name} ({what})")

    def array(self, get: Callable[[Any], Any], what: str, explain_masks: bool = False) -> str:
        """A constant array setting (a mask) as an ONNX value, rebuilt at runtime if it moves."""
        arrays = [get(r.fn) for r in self.recs]
        return self.ctx.constant(self, arrays, get(self.probe.fn), what, explain_masks)

    def const_of(self, i: int) -> np.ndarray | None:
        """Input i's values when it is a parameter or constant (None when computed in the graph)."""
        t = self.recs[0].inputs[i]
        if id(t) in self.ctx.names:
            return None
        return np.asarray(t.numpy())


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.shape == b.shape
            and bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))
        )
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return bool(a == b) if not hasattr(a, "__array__") else _same(np.asarray(a), np.asarray(b))


class Builder:
    """Walks the traced ops, runs their converters and assembles the ONNX graph."""

    def __init__(
        self, onnx: Any, traces: list[Trace], probe: Trace, symbols: list,
        input_names: list[str], model: Module, opset: int,
    ) -> None:  # fmt: skip
        self.onnx = onnx
        self.traces, self.probe = traces, probe
        self.g = Graph(onnx, symbols, input_names, opset)
        self.names: dict[int, str] = {}  # id(trace-0 tensor) -> ONNX value
        self.data_names: dict[int, str] = {}  # id(trace-0 array) -> ONNX value (embedding ids)
        for t, name in zip(traces[0].inputs, input_names):
            self.names[id(t)] = name
            self.data_names[id(t.array)] = name
        self.params: dict[int, str] = {}
        for name, p in list(model.named_parameters()) + list(model.named_buffers()):
            self.params.setdefault(id(p), name)
            self.params.setdefault(id(p.array), name)

    def value(self, op: Op, i: int) -> str:
        t = op.recs[0].inputs[i]
        name = self.names.get(id(t))
        if name is not None:
            return name
        return self.leaf(op, [r.inputs[i] for r in op.recs], op.probe.inputs[i], f"input {i}")

    def leaf(self, op: Op, tensors: list[Tensor], probe: Tensor, what: str) -> str:
        """A parameter, buffer or constant tensor as an initializer (or rebuilt if it moves)."""
        t = tensors[0]
        pname = self.params.get(id(t))
        if pname is not None:
            return self.g.const(t.numpy(), pname, key=("param", id(t)))
        return self.constant(op, [x.numpy() for x in tensors], probe.numpy(), what)

    def constant(
        self, op: Op, arrays: list, probe: Any, what: str, explain_masks: bool = False
    ) -> str:
        """An array that is not computed by a traced op, in every trace.

        explain_masks: an additive attention mask may be a traced bool tensor turned into 0 and
        -inf outside the ops (MultiheadAttention's masks); it is then rebuilt from that tensor.
        """
        a0 = arrays[0]
        if a0 is None:
            return ""
        traced = self.data_names.get(id(a0))
        if traced is not None:  # the array of a traced value (a comparison's result, an input)
            return traced
        a0 = np.asarray(a0)
        pname = self.params.get(id(arrays[0]))
        if pname is not None:  # a buffer's array passed straight to an op (batch norm stats)
            return self.g.const(a0, pname, key=("param", id(arrays[0])))
        arrays = [np.asarray(a) for a in arrays]
        probe = np.asarray(probe)
        if explain_masks:
            mask = self.padding_mask(arrays + [probe])
            if mask is not None:
                return mask
        if probe.shape == a0.shape and not np.array_equal(
            probe, a0, equal_nan=a0.dtype.kind == "f"
        ):
            # gnn casts a bool operand of arithmetic outside the ops (x + (x > 0)): rebuild it
            cast = self.padding_mask(arrays + [probe], forms=("cast",))
            if cast is not None:
                return cast
            raise op.error(
                f"{what} is a constant whose values follow the inputs' values: it was computed "
                "outside the traced ops (a comparison or a mask built from the inputs), and "
                "ONNX would freeze it; compute it with gnn ops, or pass it as a fixed constant"
            )
        if all(a.shape == a0.shape for a in arrays):
            if not all(np.array_equal(a, a0, equal_nan=a0.dtype.kind == "f") for a in arrays):
                raise op.error(f"{what} is a constant that changes with the dynamic axes")
            return self.g.const(a0, "const")
        dims = self.g.sizes([a.shape for a in arrays], f"{op.name} ({what} shape)")
        flat = a0.reshape(-1)
        if flat.size and (flat == flat[0]).all() and all((a == flat[0]).all() for a in arrays):
            value = self.onnx.numpy_helper.from_array(flat[:1].copy(), "value")
            return self.g.node("ConstantOfShape", [self.g.int_list(dims)], value=value)
        causal = _causal_kind(a0)
        if causal is not None and all(_causal_kind(a) == causal for a in arrays):
            return self.causal(dims, a0.dtype, causal)
        raise op.error(
            f"{what} is a constant of shape {a0.shape} whose size follows the dynamic axes; only "
            "uniform constants and causal masks can be rebuilt at runtime"
        )

    def padding_mask(
        self, per_trace: list, forms: tuple = ("padding", "ignore", "attend")
    ) -> str | None:
        """An additive mask (every trace, then the probe) that equals where(B, -inf, 0) or
        where(B, 0, -inf) for a traced bool tensor B (a graph input or a comparison's result),
        B of the mask's shape or (N, S) for a (N, 1, 1, S) key-padding mask; else None.
        forms=("cast",) instead matches B cast to the array's dtype.

        The match must hold in every trace, the value-reversed probe included, so a mask that
        only looks alike for one input is not taken. The newest candidate is tried first.
        """
        n = len(self.traces)
        # (the graph input's name, or the index of the comparison's record; its value in trace k)
        sources: list[tuple[str | int, Callable[[int], Any]]] = []
        for j, t in enumerate(self.traces[0].inputs):
            if t.dtype == np.bool_:
                sources.append((self.g.input_names[j], partial(self._input, j=j)))
        for i, r in enumerate(self.traces[0].records):
            if isinstance(r.fn, Compare) and r.output.dtype == np.bool_:
                sources.append((i, partial(self._output, i=i)))
        masks = [np.asarray(m) for m in per_trace]
        if masks[0].dtype.kind not in "fiu" or len(masks) != n + 1:
            return None
        for src, get in reversed(sources):
            bools = [np.asarray(get(k)) for k in range(n + 1)]
            for form in forms:
                if all(_mask_form(m, b, form) for m, b in zip(masks, bools)):
                    if isinstance(src, int):  # a comparison: converted when first used
                        self.ensure(src)
                        src = self.names[id(self.traces[0].records[src].output)]
                    return self._mask_from(src, form, masks[0].dtype)
        return None

    def _input(self, k: int, j: int) -> Any:
        trace = self.probe if k == len(self.traces) else self.traces[k]
        return trace.inputs[j].numpy()

    def _output(self, k: int, i: int) -> Any:
        trace = self.probe if k == len(self.traces) else self.traces[k]
        return trace.records[i].output.numpy()

    def _mask_from(self, src: str, form: str, dtype: np.dtype) -> str:
        g = self.g
        if form == "cast":
            return g.node("Cast", [src], to=_onnx_type(self.onnx.TensorProto, dtype))
        zero = g.const(np.asarray(0, dtype), "zero")
        ninf = g.const(np.asarray(-np.inf, dtype), "ninf")
        if form == "padding":
            src = g.node("Unsqueeze", [src, g.ints([1, 2])])
        if form == "attend":
            return g.node("Where", [src, zero, ninf])
        return g.node("Where", [src, ninf, zero])

    def causal(self, dims: list, dtype: np.dtype, kind: str) -> str:
        """A causal mask of shape dims (L, S last) built at runtime: key j <= query i attends."""
        g = self.g
        lengths = [g.scalar(d) for d in dims[-2:]]
        zero, one = g.const(np.asarray(0, np.int64), "int"), g.const(np.asarray(1, np.int64), "int")
        rows = g.node("Unsqueeze", [g.node("Range", [zero, lengths[0], one]), g.ints([1])])
        cols = g.node("Unsqueeze", [g.node("Range", [zero, lengths[1], one]), g.ints([0])])
        keep = g.node("GreaterOrEqual", [rows, cols])
        if kind == "bool":
            out = keep
        else:
            out = g.node(
                "Where",
                [
                    keep,
                    g.const(np.asarray(0, dtype), "zero"),
                    g.const(np.asarray(-np.inf, dtype), "ninf"),
                ],
            )
        if len(dims) > 2:
            out = g.node("Unsqueeze", [out, g.ints(list(range(len(dims) - 2)))])
        return out

    def run(self, output_names: list[str], in_labels: dict, out_labels: dict) -> Any:
        helper, TP = self.onnx.helper, self.onnx.TensorProto
        base = self.traces[0]
        for tr in self.traces[1:] + [self.probe]:
            if [type(r.fn) for r in tr.records] != [type(r.fn) for r in base.records]:
                raise ExportError(
                    "export: the model runs different ops when the "
                    + ("inputs' values change" if tr is self.probe else "dynamic axes change size")
                    + " (control flow that depends on them); export with fixed axes"
                )
        made = {id(r.output): i for i, r in enumerate(base.records)}
        self.ensure(*[made[id(t)] for t in base.outputs if id(t) in made])
        outputs = []
        for k, (t, name) in enumerate(zip(base.outputs, output_names)):
            src = self.names.get(id(t))
            if src is None:
                src = self.params.get(id(t))
                if src is None:
                    raise ExportError(
                        f"export: output {k} ({name}) is not computed by traced gnn ops (it was "
                        "made outside autograd, e.g. attention weights); return only op results"
                    )
                src = self.g.const(t.numpy(), src, key=("param", id(t)))
            self.g.nodes.append(helper.make_node("Identity", [src], [name]))
            per_trace = [tr.outputs[k].shape for tr in self.traces]
            dims: list[Any] = []
            for axis, sizes in enumerate(zip(*per_trace)):
                label = out_labels.get((k, axis))
                if label is not None:
                    dims.append(label)
                elif all(s == sizes[0] for s in sizes):
                    dims.append(int(sizes[0]))
                else:
                    dims.append(f"{name}_dim{axis}")
            outputs.append(helper.make_tensor_value_info(name, _onnx_type(TP, t.dtype), dims))
        inputs = []
        for k, (t, name) in enumerate(zip(base.inputs, self.g.input_names)):
            dims = [in_labels.get((k, a), int(n)) for a, n in enumerate(t.shape)]
            inputs.append(helper.make_tensor_value_info(name, _onnx_type(TP, t.dtype), dims))
        return helper.make_graph(
            self.g.nodes, "gnn", inputs, outputs, initializer=self.g.initializers
        )

    def ensure(self, *ends: int) -> None:
        """Convert records `ends` and every record they depend on, oldest first, once each.

        Only what the outputs need is converted (a loss computed in forward is left out); a
        comparison behind an attention mask is reached later, when the mask is matched to it.
        """
        base = self.traces[0]
        made = {id(r.output): i for i, r in enumerate(base.records)}
        made.update({id(r.output.array): i for i, r in enumerate(base.records)})
        todo, needed = list(ends), set()
        while todo:
            i = todo.pop()
            if i in needed or id(base.records[i].output) in self.names:
                continue
            needed.add(i)
            rec = base.records[i]
            deps = [id(t) for t in rec.inputs]
            for attr in ("ids", "cond"):  # embedding ids, where's condition: arrays, not inputs
                arr = getattr(rec.fn, attr, None)
                if arr is not None:
                    deps.append(id(arr))
            todo += [made[d] for d in deps if d in made]
        for i in sorted(needed):
            rec = base.records[i]
            cls = type(rec.fn)
            convert = CONVERTERS.get(cls)
            if convert is None:
                raise ExportError(
                    f"export: no ONNX converter for op {cls.__module__}.{cls.__name__}, "
                    f"applied in layer {rec.where}"
                )
            out = convert(Op(self, i))
            self.names[id(rec.output)] = out
            self.data_names[id(rec.output.array)] = out


def _mask_form(m: np.ndarray, b: np.ndarray, form: str) -> bool:
    """Whether additive mask m is bool tensor b in the given form (see Builder.padding_mask)."""
    if b.dtype != np.bool_:
        return False
    if form == "padding":
        if b.ndim != 2 or m.shape != (b.shape[0], 1, 1, b.shape[1]):
            return False
        b = b[:, None, None, :]
    elif m.shape != b.shape:
        return False
    if form == "cast":
        return bool(np.array_equal(m, b.astype(m.dtype)))
    want = np.where(b, -np.inf, 0.0) if form != "attend" else np.where(b, 0.0, -np.inf)
    return bool(np.array_equal(m, want.astype(m.dtype)))


def _causal_kind(a: np.ndarray) -> str | None:
    """'bool' or 'additive' when `a` is a causal mask (leading dims of size 1), else None."""
    if a.ndim < 2 or any(n != 1 for n in a.shape[:-2]):
        return None
    m = a.reshape(a.shape[-2:])
    keep = np.tril(np.ones(m.shape, dtype=bool))
    if m.dtype == bool:
        return "bool" if np.array_equal(m, keep) else None
    if m.dtype.kind == "f" and np.array_equal(m, np.where(keep, 0.0, -np.inf).astype(m.dtype)):
        return "additive"
    return None


def _onnx_type(TP: Any, dtype: np.dtype) -> int:
    table = {
        "float32": TP.FLOAT, "float64": TP.DOUBLE, "float16": TP.FLOAT16, "int64": TP.INT64,
        "int32": TP.INT32, "int16": TP.INT16, "int8": TP.INT8, "uint8": TP.UINT8,
        "bool": TP.BOOL,
    }  # fmt: skip
    name = np.dtype(dtype).name
    if name not in table:
        raise ExportError(f"export: dtype {name} has no ONNX counterpart here")
    return table[name]


def build_graph(
    onnx: Any, traces: list[Trace], probe: Trace, symbols: list, input_names: list[str],
    output_names: list[str], in_labels: dict, out_labels: dict, model: Module, opset: int,
) -> Any:  # fmt: skip
    """The onnx GraphProto of the traced model."""
    builder = Builder(onnx, traces, probe, symbols, input_names, model, opset)
    return builder.run(output_names, in_labels, out_labels)


# ---- helpers for converters ----------------------------------------------------------------------


def _scalar(op: Op, value: float, dtype: Any = None) -> str:
    return op.g.const(np.asarray(value, dtype=dtype or op.out_dtype()), "scalar")


def _reduce(op: Op, kind: str, x: str, axes: Any, keepdim: bool) -> str:
    """ReduceSum/Mean/Max/Min/LogSumExp over axes (None: all), opset-aware."""
    g = op.g
    inputs = [x]
    attrs: dict = {"keepdims": int(bool(keepdim))}
    if axes is not None:
        if kind == "ReduceSum" or g.opset >= 18:
            inputs.append(g.ints(list(axes)))
        else:
            attrs["axes"] = list(axes)
    return g.node(kind, inputs, **attrs)


# ---- elementwise ---------------------------------------------------------------------------------


def _binary(onnx_op: str) -> Callable[[Op], str]:
    def convert(op: Op) -> str:
        return op.g.node(onnx_op, [op.x(0), op.x(1)])

    return convert


for _cls, _name in (
    (elementwise.Add, "Add"), (elementwise.Sub, "Sub"), (elementwise.Mul, "Mul"),
    (elementwise.Div, "Div"), (elementwise.Pow, "Pow"), (linalg.MatMul, "MatMul"),
):  # fmt: skip
    CONVERTERS[_cls] = _binary(_name)


def _unary(onnx_op: str) -> Callable[[Op], str]:
    def convert(op: Op) -> str:
        return op.g.node(onnx_op, [op.x(0)])

    return convert


for _cls, _name in (
    (elementwise.Neg, "Neg"), (elementwise.Exp, "Exp"), (elementwise.Log, "Log"),
    (elementwise.Sqrt, "Sqrt"), (elementwise.Abs, "Abs"), (elementwise.Tanh, "Tanh"),
    (elementwise.Sigmoid, "Sigmoid"), (elementwise.Relu, "Relu"), (elementwise.Clone, "Identity"),
    (shape.ToDevice, "Identity"), (unary.Sin, "Sin"), (unary.Cos, "Cos"),
):  # fmt: skip
    CONVERTERS[_cls] = _unary(_name)


@converts(elementwise.PowScalar)
def _pow_scalar(op: Op) -> str:
    p = op.static(lambda f: f.p, "the exponent")
    x = op.x(0)
    if p == 2:
        return op.g.node("Mul", [x, x])
    return op.g.node("Pow", [x, _scalar(op, p)])


@converts(elementwise.LeakyRelu)
def _leaky_relu(op: Op) -> str:
    return op.g.node("LeakyRelu", [op.x(0)], alpha=float(op.static(lambda f: f.slope, "slope")))


@converts(elementwise.Gelu)
def _gelu(op: Op) -> str:
    return _gelu_of(op, op.x(0), op.static(lambda f: f.approximate, "approximate"))


@converts(bias_gelu.BiasGelu)
def _bias_gelu(op: Op) -> str:
    # the fused GPU op is exported as what it computes: gelu(x + bias)
    x = op.g.node("Add", [op.x(0), op.x(1)])
    return _gelu_of(op, x, op.static(lambda f: f.spec.approximate, "approximate"))


def _gelu_of(op: Op, x: str, approximate: str) -> str:
    g = op.g
    half = g.node("Mul", [x, _scalar(op, 0.5)])
    if approximate == "tanh":
        cube = g.node("Mul", [g.node("Mul", [x, x]), x])
        inner = g.node("Add", [x, g.node("Mul", [cube, _scalar(op, 0.044715)])])
        t = g.node("Tanh", [g.node("Mul", [inner, _scalar(op, math.sqrt(2.0 / math.pi))])])
    else:
        t = g.node("Erf", [g.node("Mul", [x, _scalar(op, 1.0 / math.sqrt(2.0))])])
    return g.node("Mul", [half, g.node("Add", [t, _scalar(op, 1.0)])])


@converts(unary.Log1p)
def _log1p(op: Op) -> str:
    return op.g.node("Log", [op.g.node("Add", [op.x(0), _scalar(op, 1.0)])])


@converts(unary.Expm1)
def _expm1(op: Op) -> str:
    return op.g.node("Sub", [op.g.node("Exp", [op.x(0)]), _scalar(op, 1.0)])


@converts(unary.Softplus)
def _softplus(op: Op) -> str:
    g, x = op.g, op.x(0)
    beta = op.static(lambda f: f.beta, "beta")
    threshold = op.static(lambda f: f.threshold, "threshold")
    z = x if beta == 1 else g.node("Mul", [x, _scalar(op, beta)])
    y = g.node("Softplus", [z])
    if beta != 1:
        y = g.node("Div", [y, _scalar(op, beta)])
    return g.node("Where", [g.node("Greater", [z, _scalar(op, threshold)]), x, y])


@converts(elementwise.Where)
def _where(op: Op) -> str:
    cond = op.array(lambda f: f.cond, "the condition")
    return op.g.node("Where", [cond, op.x(0), op.x(1)])


@converts(elementwise.Clamp)
def _clamp(op: Op) -> str:
    lo = op.static(lambda f: f.lo, "min")
    hi = op.static(lambda f: f.hi, "max")
    bounds = ["" if b is None else _scalar(op, b) for b in (lo, hi)]
    while bounds and bounds[-1] == "":
        bounds.pop()
    return op.g.node("Clip", [op.x(0)] + bounds)


_COMPARE = {
    "equal": "Equal", "not_equal": "Equal", "less": "Less", "less_equal": "LessOrEqual",
    "greater": "Greater", "greater_equal": "GreaterOrEqual",
}  # fmt: skip


@converts(Compare)
def _compare(op: Op) -> str:
    g = op.g
    a, b = op.x(0), op.x(1)
    da, db = op.dtype(0), op.dtype(1)
    if da != db:  # as gnn's pair(): a float operand wins; else NumPy's promotion
        target = da if da.kind == "f" else db if db.kind == "f" else np.promote_types(da, db)
        to = _onnx_type(op.ctx.onnx.TensorProto, target)
        a = a if da == target else g.node("Cast", [a], to=to)
        b = b if db == target else g.node("Cast", [b], to=to)
    out = g.node(_COMPARE[op.fn.name], [a, b])
    return g.node("Not", [out]) if op.fn.name == "not_equal" else out


@converts(Rounding)
def _rounding(op: Op) -> str:
    g, x, name = op.g, op.x(0), op.fn.name
    if name == "isfinite":
        return g.node("Not", [g.node("Or", [g.node("IsNaN", [x]), g.node("IsInf", [x])])])
    table = {"sign": "Sign", "floor": "Floor", "ceil": "Ceil", "round": "Round", "isnan": "IsNaN"}
    if name not in table:
        raise op.error(f"no ONNX converter for {name}")
    return g.node(table[name], [x])


@converts(shape.Cast)
def _cast(op: Op) -> str:
    dt = op.static(lambda f: np.dtype(f.dtype), "dtype")
    return op.g.node("Cast", [op.x(0)], to=_onnx_type(op.ctx.onnx.TensorProto, dt))


# ---- shape ops -----------------------------------------------------------------------------------


@converts(shape.Reshape)
def _reshape(op: Op) -> str:
    target = op.sizes(lambda f: f.shape, "target shape")
    return op.g.node("Reshape", [op.x(0), op.g.int_list(target)])


@converts(shape.Permute)
def _permute(op: Op) -> str:
    return op.g.node("Transpose", [op.x(0)], perm=list(op.static(lambda f: f.dims, "dims")))


@converts(shape.Expand)
def _expand(op: Op) -> str:
    target = op.sizes(lambda f: f.shape, "target shape")
    return op.g.node("Expand", [op.x(0), op.g.int_list(target)])


@converts(shape.Cat)
def _cat(op: Op) -> str:
    axis = op.static(lambda f: f.axis, "dim")
    return op.g.node("Concat", [op.x(i) for i in range(op.n_inputs)], axis=int(axis))


@converts(shape.Stack)
def _stack(op: Op) -> str:
    g = op.g
    axis = int(op.static(lambda f: f.axis, "dim"))
    parts = [g.node("Unsqueeze", [op.x(i), g.ints([axis])]) for i in range(op.n_inputs)]
    return g.node("Concat", parts, axis=axis)


def _position(op: Op, values: list[int], sizes: list[int], what: str) -> Any:
    """An index or slice bound as an int (negative: from the end) or a Sym, across traces."""
    if all(v == values[0] for v in values):
        return int(values[0])
    from_end = [v - n for v, n in zip(values, sizes)]
    if all(v == from_end[0] for v in from_end):
        return INT_MAX if from_end[0] == 0 else int(from_end[0])
    sym = op.g.solve(values)
    if sym is None:
        raise op.error(f"{what} {values} does not follow the dynamic axes as a product of them")
    return sym


def _plus_one(op: Op, pos: Any) -> Any:
    if isinstance(pos, int):
        return INT_MAX if pos == -1 else pos + 1
    return ("plus1", pos)


@converts(shape.GetItem)
def _getitem(op: Op) -> str:
    g = op.g
    indexes = [r.fn.index for r in op.recs]
    shapes = [r.inputs[0].shape for r in op.recs]
    ndim = len(shapes[0])
    parts_per = [ix if isinstance(ix, tuple) else (ix,) for ix in indexes]
    parts0 = parts_per[0]
    kinds = [_part_kind(p) for p in parts0]
    for parts in parts_per[1:]:
        if [_part_kind(p) for p in parts] != kinds:
            raise op.error("the index changes kind with the dynamic axes")
    if "array" in kinds:
        return _gather(op, parts0, kinds, ndim)
    n_real = sum(k in ("int", "slice") for k in kinds)
    if kinds.count("ellipsis") > 1:
        raise op.error("an index with more than one Ellipsis")
    expanded: list[list] = []
    for parts in parts_per:
        row: list = []
        for p, k in zip(parts, kinds):
            row += [slice(None)] * (ndim - n_real) if k == "ellipsis" else [p]
        row += [slice(None)] * (ndim - sum(_part_kind(p) in ("int", "slice") for p in row))
        expanded.append(row)
    starts: list = []
    ends: list = []
    axes: list[int] = []
    steps: list[int] = []
    squeeze: list[int] = []
    unsqueeze: list[int] = []
    axis = out_axis = 0
    for j, p0 in enumerate(expanded[0]):
        kind = _part_kind(p0)
        if kind == "none":
            unsqueeze.append(out_axis)
            out_axis += 1
            continue
        sizes = [s[axis] for s in shapes]
        if kind == "int":
            values = [int(row[j]) % n for row, n in zip(expanded, sizes)]
            pos = _position(op, values, sizes, "the index")
            starts.append(pos)
            ends.append(_plus_one(op, pos))
            axes.append(axis)
            steps.append(1)
            squeeze.append(axis)
        else:
            bounds = [row[j].indices(n) for row, n in zip(expanded, sizes)]
            step = bounds[0][2]
            if any(b[2] != step for b in bounds):
                raise op.error("a slice step changes with the dynamic axes")
            if not all(b == (0, n, 1) for b, n in zip(bounds, sizes)):
                start = _position(op, [b[0] for b in bounds], sizes, "a slice start")
                if step < 0 and all(b[1] == -1 for b in bounds):
                    end: Any = -INT_MAX  # down to and including index 0
                else:
                    end = _position(op, [b[1] for b in bounds], sizes, "a slice end")
                if step > 0 and all(b[1] <= b[0] for b in bounds):
                    end = start  # an empty slice
                starts.append(start)
                ends.append(end)
                axes.append(axis)
                steps.append(step)
            out_axis += 1
        axis += 1
    x = op.x(0)
    if axes:
        x = g.node(
            "Slice",
            [x, _bound_list(op, starts), _bound_list(op, ends), g.ints(axes), g.ints(steps)],
        )
    if squeeze:
        x = g.node("Squeeze", [x, g.ints(squeeze)])
    if unsqueeze:
        x = g.node("Unsqueeze", [x, g.ints(unsqueeze)])
    if x == op.x(0):
        x = g.node("Identity", [x])
    return x


def _bound_list(op: Op, items: list) -> str:
    g = op.g
    plain: list = []
    for it in items:
        if isinstance(it, tuple) and it and it[0] == "plus1":
            plain.append(("+1", it[1]))
        else:
            plain.append(it)
    if not any(isinstance(i, tuple) and i and i[0] == "+1" for i in plain):
        return g.int_list(plain)
    pieces = []
    for it in plain:
        if isinstance(it, tuple) and it and it[0] == "+1":
            pieces.append(g.node("Add", [g.dim(it[1]), g.ints([1])]))
        else:
            pieces.append(g.int_list([it]))
    return g.node("Concat", pieces, axis=0)


def _part_kind(p: Any) -> str:
    if p is None:
        return "none"
    if p is Ellipsis:
        return "ellipsis"
    if isinstance(p, slice):
        return "slice"
    if isinstance(p, (int, np.integer)):
        return "int"
    return "array"


def _gather(op: Op, parts: tuple, kinds: list, ndim: int) -> str:
    """x[..., ids, ...]: one integer array index, every other part a full slice."""
    arrays = [j for j, k in enumerate(kinds) if k == "array"]
    others_full = all(
        k == "ellipsis" or (k == "slice" and p == slice(None))
        for p, k in zip(parts, kinds)
        if k != "array"
    )
    if len(arrays) != 1 or not others_full or ("ellipsis" in kinds and arrays[0] != len(kinds) - 1):
        raise op.error(
            "only one integer-array index with full slices around it converts (bool masks and "
            "several arrays make shapes that depend on the data)"
        )
    ids = np.asarray(parts[arrays[0]])
    if ids.dtype.kind not in "iu":
        raise op.error("boolean-mask indexing makes a shape that depends on the data")
    axis = ndim - 1 if "ellipsis" in kinds else arrays[0]
    index = op.array(lambda f: np.asarray(_array_part(f.index)), "the index array")
    return op.g.node("Gather", [op.x(0), index], axis=axis)


def _array_part(index: Any) -> Any:
    parts = index if isinstance(index, tuple) else (index,)
    return next(p for p in parts if _part_kind(p) == "array").astype(np.int64)


# ---- reductions ----------------------------------------------------------------------------------


@converts(reduce.SumMean)
def _sum_mean(op: Op) -> str:
    axes = op.static(lambda f: f.axes, "dims")
    keep = op.static(lambda f: f.keepdim, "keepdim")
    kind = "ReduceMean" if op.static(lambda f: f.mean, "sum/mean") else "ReduceSum"
    return _reduce(op, kind, op.x(0), axes, keep)


@converts(reduce.MaxMin)
def _max_min(op: Op) -> str:
    axes = op.static(lambda f: f.axes, "dims")
    keep = op.static(lambda f: f.keepdim, "keepdim")
    kind = "ReduceMax" if op.static(lambda f: f.take_max, "max/min") else "ReduceMin"
    return _reduce(op, kind, op.x(0), axes, keep)


@converts(reduce.LogSumExp)
def _logsumexp(op: Op) -> str:
    axes = op.static(lambda f: f.axes, "dims")
    keep = op.static(lambda f: f.keepdim, "keepdim")
    return _reduce(op, "ReduceLogSumExp", op.x(0), axes, keep)


@converts(reduce.Softmax, reduce.LogSoftmax)
def _softmax(op: Op) -> str:
    axis = int(op.static(lambda f: f.axis, "dim"))
    kind = "Softmax" if isinstance(op.fn, reduce.Softmax) else "LogSoftmax"
    return op.g.node(kind, [op.x(0)], axis=axis)


@converts(reduce.CumSum)
def _cumsum(op: Op) -> str:
    axis = int(op.static(lambda f: f.axis, "dim"))
    return op.g.node("CumSum", [op.x(0), op.g.const(np.asarray(axis, np.int64), "axis")])


# ---- layers --------------------------------------------------------------------------------------


@converts(linalg.Linear)
def _linear(op: Op) -> str:
    g = op.g
    w = op.const_of(1)
    wt = g.const(w.T, "weight_t") if w is not None else g.node("Transpose", [op.x(1)], perm=[1, 0])
    y = g.node("MatMul", [op.x(0), wt])
    return g.node("Add", [y, op.x(2)]) if op.n_inputs > 2 else y


@converts(attention.Attention)
def _attention(op: Op) -> str:
    g = op.g
    if op.static(lambda f: f.dropout_p, "dropout_p") > 0:
        raise op.error("attention dropout is on; export in eval mode (dropout_p=0)")
    scale = float(op.static(lambda f: f.spec.scale, "scale"))
    q, k, v = op.x(0), op.x(1), op.x(2)
    rank = len(op.shape(1))
    perm = list(range(rank - 2)) + [rank - 1, rank - 2]
    s = g.node("MatMul", [q, g.node("Transpose", [k], perm=perm)])
    s = g.node("Mul", [s, _scalar(op, scale, op.dtype(0))])
    p = None
    if op.recs[0].fn.mask is not None:
        s = g.node("Add", [s, op.array(lambda f: f.mask, "the attention mask", True)])
        p = g.node("Softmax", [s], axis=-1)
        # A row with every key masked is NaN in Softmax; gnn gives it zero weights (as PyTorch).
        p = g.node("Where", [g.node("IsNaN", [p]), _scalar(op, 0.0, op.dtype(0)), p])
    p = p or g.node("Softmax", [s], axis=-1)
    return g.node("MatMul", [p, v])


@converts(batch_norm.BatchNorm)
def _batch_norm(op: Op) -> str:
    g = op.g
    if op.static(lambda f: f.training, "training"):
        raise op.error(
            "batch norm uses the batch's statistics (training mode, or no running statistics); "
            "export a model in eval mode with running statistics"
        )
    c = op.shape(0)[1]
    dt = op.dtype(0)
    k = 1
    if op.fn.has_weight:
        weight = op.x(k)
        k += 1
    else:
        weight = g.const(np.ones(c, dt), "ones")
    bias = op.x(k) if op.fn.has_bias else g.const(np.zeros(c, dt), "zeros")
    mean = op.array(lambda f: f.stats[0], "running_mean")
    var = op.array(lambda f: f.stats[1], "running_var")
    eps = float(op.static(lambda f: f.eps, "eps"))
    return g.node("BatchNormalization", [op.x(0), weight, bias, mean, var], epsilon=eps)


@converts(layer_norm.LayerNorm)
def _layer_norm(op: Op) -> str:
    g = op.g
    n = int(op.static(lambda f: f.ndim, "normalized dims"))
    shape_ = op.shape(0)[-n:]
    dt = op.dtype(0)
    k = 1
    if op.fn.has_weight:
        weight = op.x(k)
        k += 1
    else:
        weight = g.const(np.ones(shape_, dt), "ones")
    bias = op.x(k) if op.fn.has_bias else g.const(np.zeros(shape_, dt), "zeros")
    eps = float(op.static(lambda f: f.eps, "eps"))
    return g.node("LayerNormalization", [op.x(0), weight, bias], axis=-n, epsilon=eps)


@converts(conv.Conv2d)
def _conv2d(op: Op) -> str:
    stride = op.static(lambda f: (f.geom.sh, f.geom.sw), "stride")
    pads = op.static(lambda f: (f.geom.pt, f.geom.pb, f.geom.pl, f.geom.pr), "padding")
    dilation = op.static(lambda f: (f.geom.dh, f.geom.dw), "dilation")
    groups = int(op.static(lambda f: f.groups, "groups"))
    kernel = list(op.shape(1)[2:])
    return op.g.node(
        "Conv", [op.x(i) for i in range(op.n_inputs)], kernel_shape=kernel, strides=list(stride),
        pads=[pads[0], pads[2], pads[1], pads[3]], dilations=list(dilation), group=groups,
    )  # fmt: skip


@converts(conv.ConvTranspose2d)
def _conv_transpose2d(op: Op) -> str:
    geo = op.static(
        lambda f: (f.geom.sh, f.geom.sw, f.geom.dh, f.geom.dw, f.geom.pt, f.geom.pb, f.geom.pl,
                   f.geom.pr),
        "geometry",
    )  # fmt: skip
    sh, sw, dh, dw, pt, pb, pl, pr = geo
    groups = int(op.static(lambda f: f.groups, "groups"))
    kernel = list(op.shape(1)[2:])
    return op.g.node(
        "ConvTranspose", [op.x(i) for i in range(op.n_inputs)], kernel_shape=kernel,
        strides=[sh, sw], dilations=[dh, dw], pads=[pt, pl, pt, pl],
        output_padding=[pb - pt, pr - pl], group=groups,
    )  # fmt: skip


def _pool_geometry(op: Op) -> tuple:
    return op.static(
        lambda f: (f.geom.kh, f.geom.kw, f.geom.sh, f.geom.sw, f.geom.dh, f.geom.dw, f.geom.pt,
                   f.geom.pb, f.geom.pl, f.geom.pr),
        "window geometry",
    )  # fmt: skip


@converts(conv.MaxPool2d)
def _max_pool(op: Op) -> str:
    kh, kw, sh, sw, dh, dw, pt, pb, pl, pr = _pool_geometry(op)
    return op.g.node(
        "MaxPool", [op.x(0)], kernel_shape=[kh, kw], strides=[sh, sw], dilations=[dh, dw],
        pads=[pt, pl, pb, pr],
    )  # fmt: skip


@converts(conv.AvgPool2d)
def _avg_pool(op: Op) -> str:
    g = op.g
    kh, kw, sh, sw, _, _, pt, pb, pl, pr = _pool_geometry(op)
    # AveragePool counting padding divides every window by kh * kw: times that, it is the
    # window sum; gnn's divisor (per output position) then gives PyTorch's rules exactly.
    avg = g.node(
        "AveragePool", [op.x(0)], kernel_shape=[kh, kw], strides=[sh, sw],
        pads=[pt, pl, pb, pr], count_include_pad=1,
    )  # fmt: skip
    divisor = op.static(lambda f: np.asarray(_host(f.divisor), dtype=np.float64), "divisor")
    factor = (kh * kw) / divisor
    if np.all(factor == 1.0):
        return avg
    return g.node("Mul", [avg, g.const(factor.astype(op.dtype(0)), "pool_scale")])


def _host(a: Any) -> Any:
    return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else a


@converts(embedding.Embedding)
def _embedding(op: Op) -> str:
    g = op.g
    ids0 = op.recs[0].fn.ids
    src = op.ctx.data_names.get(id(ids0))
    if src is None:
        src = op.array(lambda f: f.ids, "the ids")
    elif np.asarray(ids0).dtype != np.int64:
        src = g.node("Cast", [src], to=op.ctx.onnx.TensorProto.INT64)
    return g.node("Gather", [op.x(0), src], axis=0)


@converts(dropout.Dropout)
def _dropout(op: Op) -> str:
    raise op.error("dropout is on (training=True); export in eval mode")


# ---- recurrent layers ----------------------------------------------------------------------------

# PyTorch's gate blocks -> ONNX's: LSTM i f g o -> i o f c; GRU r z n -> z r h.
_GATE_ORDER = {"LSTM": (0, 3, 1, 2), "GRU": (1, 0, 2), "RNN_TANH": (0,), "RNN_RELU": (0,)}


@converts(rnn.RecurrentLayer)
def _recurrent(op: Op) -> str:
    g = op.g
    mode = op.static(lambda f: f.mode, "mode")
    reverse = op.static(lambda f: f.reverse, "direction")
    has_bias = op.static(lambda f: f.has_bias, "bias")
    lstm = mode == "LSTM"
    first = 3 if lstm else 2
    consts = [op.const_of(i) for i in range(first, op.n_inputs)]
    weights = [w for w in consts if w is not None]
    if len(weights) != len(consts):
        raise op.error("recurrent weights must be parameters (constants), not computed values")
    w_ih, w_hh = weights[0], weights[1]
    hidden = w_hh.shape[1]
    order = _GATE_ORDER[mode]

    def blocks(a: np.ndarray) -> np.ndarray:
        parts = np.split(a, len(order), axis=0)
        return np.concatenate([parts[i] for i in order], axis=0)

    dt = op.dtype(0)
    w = g.const(blocks(w_ih)[None].astype(dt), "rnn_w")
    r = g.const(blocks(w_hh)[None].astype(dt), "rnn_r")
    if has_bias:
        b = g.const(
            np.concatenate([blocks(weights[2]), blocks(weights[3])])[None].astype(dt), "rnn_b"
        )
    else:
        b = ""
    h0 = g.node("Unsqueeze", [op.x(1), g.ints([0])])
    inputs = [op.x(0), w, r, b, "", h0]
    attrs: dict = {"hidden_size": int(hidden), "direction": "reverse" if reverse else "forward"}
    if lstm:
        inputs.append(g.node("Unsqueeze", [op.x(2), g.ints([0])]))
        kind = "LSTM"
    elif mode == "GRU":
        kind = "GRU"
        attrs["linear_before_reset"] = 1  # PyTorch's n = tanh(W x + b + r * (U h + b_hn))
    else:
        kind = "RNN"
        attrs["activations"] = ["Tanh" if mode == "RNN_TANH" else "Relu"]
    outs = g.node(kind, inputs, n_out=3 if lstm else 2, **attrs)
    y = g.node("Squeeze", [outs[0], g.ints([1])])  # (T, 1, B, H) -> (T, B, H)
    if not lstm:
        return y
    return g.node("Concat", [y, outs[2]], axis=0)  # gnn appends c_n: (T + 1, B, H)
