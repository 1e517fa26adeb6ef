"""The ONNX graph under construction: nodes, initializers, and sizes that follow dynamic axes.

A size that moves with the dynamic axes is a Sym: c * prod(label ** e), solved from its value in
each trace (export.py traces once per label, with that axis one longer). It is computed in the
graph from the inputs' runtime shapes, so one exported file serves every batch size.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gnn.onnx.export import ExportError

# (c, ((label, e), ...)): c times the product of the labelled sizes to their powers
Sym = tuple[int, tuple[tuple[str, int], ...]]


class Graph:
    """Collects nodes and initializers; hands out unique value names."""

    def __init__(self, onnx: Any, symbols: list, input_names: list[str], opset: int) -> None:
        self.onnx, self.helper = onnx, onnx.helper
        self.symbols = symbols  # [(label, [(input index, axis)], base size, variant size)]
        self.input_names = input_names
        self.opset = opset
        self.nodes: list = []
        self.initializers: list = []
        self._used: set[str] = set(input_names)
        self._consts: dict = {}  # id(array) or (dtype, bytes) -> initializer name
        self._dims: dict = {}

    def fresh(self, hint: str) -> str:
        """A value name not used yet."""
        base = "".join(c if c.isalnum() or c in "._" else "_" for c in hint) or "v"
        name, i = base, 1
        while name in self._used:
            name, i = f"{base}_{i}", i + 1
        self._used.add(name)
        return name

    def node(self, op_type: str, inputs: list[str], n_out: int = 1, **attrs: Any) -> Any:
        """Add a node; its output name (a list of names when n_out > 1)."""
        outs = [self.fresh(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(self.helper.make_node(op_type, inputs, outs, **attrs))
        return outs[0] if n_out == 1 else outs

    def const(self, value: Any, hint: str = "const", dtype: Any = None, key: Any = None) -> str:
        """An initializer holding `value` (shared when the same array or bytes come again)."""
        arr = np.asarray(value, dtype=dtype)
        if key is None:
            key = (arr.dtype.str, arr.shape, arr.tobytes())
        name = self._consts.get(key)
        if name is None:
            name = self.fresh(hint)
            self.initializers.append(
                self.onnx.numpy_helper.from_array(np.ascontiguousarray(arr), name)
            )
            self._consts[key] = name
        return name

    def ints(self, values: list[int]) -> str:
        return self.const(np.asarray(values, dtype=np.int64), "ints")

    # ---- sizes that follow the dynamic axes ------------------------------------------------------

    def solve(self, values: list[int]) -> Sym | None:
        """The Sym whose value in each trace is `values` (base first), or None if none fits."""
        v0 = int(values[0])
        exps: list[tuple[str, int]] = []
        for k, (label, _, n0, n1) in enumerate(self.symbols):
            v1 = int(values[k + 1])
            if v1 == v0:
                continue
            for e in (1, 2, 3):
                if v0 * n1**e == v1 * n0**e:
                    exps.append((label, e))
                    break
            else:
                return None
        denom = math.prod(self.symbols[[s[0] for s in self.symbols].index(lab)][2] ** e
                          for lab, e in exps)  # fmt: skip
        if denom == 0 or v0 % denom:
            return None
        return (v0 // denom, tuple(exps))

    def label_size(self, label: str) -> str:
        """A 1-D int64 [1] value: the runtime size of the axes labelled `label`."""
        key = ("label", label)
        if key not in self._dims:
            _, axes, _, _ = next(s for s in self.symbols if s[0] == label)
            k, axis = axes[0]
            shape = self.node("Shape", [self.input_names[k]])
            self._dims[key] = self.node("Gather", [shape, self.ints([axis])], axis=0)
        return self._dims[key]

    def dim(self, sym: Sym) -> str:
        """A 1-D int64 [1] value computing the Sym at runtime."""
        c, exps = sym
        if not exps:
            return self.ints([c])
        key = ("dim", sym)
        if key not in self._dims:
            out: str | None = None
            for label, e in exps:
                for _ in range(e):
                    size = self.label_size(label)
                    out = size if out is None else self.node("Mul", [out, size])
            # solve() gives each label an exponent of 1 to 3, and exps is not empty here
            assert out is not None
            if c != 1:
                out = self.node("Mul", [out, self.ints([c])])
            self._dims[key] = out
        return self._dims[key]

    def int_list(self, items: list) -> str:
        """A 1-D int64 value from ints and Syms (an initializer when all are ints)."""
        if all(isinstance(i, (int, np.integer)) for i in items):
            return self.ints([int(i) for i in items])
        pieces, run = [], []
        for i in items:
            if isinstance(i, (int, np.integer)):
                run.append(int(i))
                continue
            if run:
                pieces.append(self.ints(run))
                run = []
            pieces.append(self.dim(i))
        if run:
            pieces.append(self.ints(run))
        return pieces[0] if len(pieces) == 1 else self.node("Concat", pieces, axis=0)

    def scalar(self, item: Any) -> str:
        """A 0-d int64 value from an int or a Sym."""
        if isinstance(item, (int, np.integer)):
            return self.const(np.asarray(int(item), dtype=np.int64), "int")
        return self.node("Squeeze", [self.dim(item), self.ints([0])])

    def sizes(self, per_trace: list, what: str) -> list:
        """Solve a list of sizes given per trace: ints where fixed, Syms where they move."""
        lengths = {len(v) for v in per_trace}
        if len(lengths) != 1:
            raise ExportError(f"export: {what} changes rank with the dynamic axes")
        out: list[int | Sym] = []
        for values in zip(*per_trace):
            if all(v == values[0] for v in values):
                out.append(int(values[0]))
                continue
            sym = self.solve(list(values))
            if sym is None:
                raise ExportError(
                    f"export: {what} takes sizes {list(values)} across the traced sizes of the "
                    "dynamic axes, which is not a product of them"
                )
            out.append(sym)
        return out
