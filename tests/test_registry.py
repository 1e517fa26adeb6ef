"""The op registry (gnn/ops/registry.py) is the one list of ops: every registered op has an op
table row (or a reason not to) and a row in docs/ops.md, and gnn.functional, Tensor and gnn expose
exactly the registered spellings.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest
from op_table import NOT_IN_TABLE, ROWS

import gnn
import gnn.functional as F
from gnn.ops.registry import OPS, functions, register, top_level
from gnn.tensor import Tensor

ROOT = Path(__file__).resolve().parents[1]


def _missing(wanted: set, have: set, what: str) -> list[str]:
    return [f"{name}: {what}" for name in sorted(wanted - have)]


def test_every_op_has_a_table_row_and_every_row_an_op() -> None:
    rows = {row.op for row in ROWS}
    problems = _missing(
        set(OPS), rows | set(NOT_IN_TABLE), "registered, no row in tests/op_table.py"
    )
    problems += _missing(rows | set(NOT_IN_TABLE), set(OPS), "in tests/op_table.py, not registered")
    problems += [
        f"{n}: has a row and a reason not to (NOT_IN_TABLE)" for n in rows & NOT_IN_TABLE.keys()
    ]
    assert not problems, "\n".join(problems)


def docs_rows() -> dict[str, tuple[set, set, set]]:
    """op -> (F names, Tensor attributes, gnn names), from the tables of docs/ops.md."""
    rows = {}
    for line in (ROOT / "docs" / "ops.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 5:
            name = cells[0].strip("`")
            rows[name] = tuple(set(re.findall(r"`([^`]+)`", c)) for c in cells[1:4])
    return rows


def test_every_op_has_a_docs_row_with_its_spellings() -> None:
    docs = docs_rows()
    problems = _missing(set(OPS), set(docs), "registered, no row in docs/ops.md")
    problems += _missing(set(docs), set(OPS), "in docs/ops.md, not registered")
    for name in sorted(set(docs) & set(OPS)):
        op = OPS[name]
        wanted = (
            set(op.names),
            set(op.tensor),
            set(op.names) if op.top else set(),
        )
        for column, have, want in zip(("F", "Tensor", "gnn"), docs[name], wanted):
            if have != want:
                problems.append(
                    f"{name}: docs/ops.md lists {column} {sorted(have)}, registry {sorted(want)}"
                )
    assert not problems, "\n".join(problems)


def test_functional_is_exactly_the_registered_functions() -> None:
    assert F.__all__ == sorted(functions())
    for name, fn in functions().items():
        assert getattr(F, name) is fn, name
    public = {n for n, v in vars(F).items() if not n.startswith("_") and callable(v)}
    assert public == set(F.__all__), sorted(public ^ set(F.__all__))


def class_body_names() -> set[str]:
    """What tensor.py's class Tensor defines itself (TYPE_CHECKING declarations aside)."""
    tree = ast.parse((ROOT / "gnn" / "tensor.py").read_text(encoding="utf-8"))
    body = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Tensor").body
    names = set()
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def type_checking_declarations() -> set[str]:
    tree = ast.parse((ROOT / "gnn" / "tensor.py").read_text(encoding="utf-8"))
    body = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Tensor").body
    block = next(
        n for n in body if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test)
    )
    return {
        t.id
        for node in ast.walk(block)
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    }


def test_tensor_has_exactly_the_registered_methods() -> None:
    registered = {a: v for op in OPS.values() for a, v in op.tensor.items()}
    own = class_body_names()
    assert not own & set(registered), (
        f"defined in tensor.py and registered: {own & set(registered)}"
    )
    for attribute, value in registered.items():
        assert vars(Tensor)[attribute] is value, attribute
    extra = (
        set(vars(Tensor)) - own - set(registered) - set(vars(object)) - {"__slots__", "__dict__"}
    )
    extra -= {"__module__", "__qualname__", "__firstlineno__", "__static_attributes__", "__doc__"}
    extra -= {"__annotations__", "__annotate__", "__annotate_func__"}  # annotated attributes
    extra -= set(Tensor.__slots__)
    extra.discard("__slotnames__")  # copyreg's cache, set once a Tensor has been copied
    assert not extra, f"Tensor attributes neither in tensor.py nor registered: {sorted(extra)}"
    # mypy's view of the operators (tensor.py, under TYPE_CHECKING) names registered ones only
    declared = {n for n in type_checking_declarations() if n.startswith("__")}
    assert declared <= set(registered), sorted(declared - set(registered))


def test_gnn_has_exactly_the_registered_top_level_names() -> None:
    for name, fn in top_level().items():
        assert name in gnn.__all__ and getattr(gnn, name) is fn, name
    op_functions = {id(op.fn) for op in OPS.values()}
    stray = [n for n in gnn.__all__ if n not in top_level() and id(getattr(gnn, n)) in op_functions]
    assert not stray, f"gnn exposes ops that are not registered as top-level: {stray}"


def test_register_refuses_a_spelling_that_is_taken() -> None:
    before = (dict(OPS), dict(vars(Tensor)))

    def relu(x: Tensor) -> Tensor:
        return x

    with pytest.raises(ValueError, match="relu"):
        register()(relu)
    with pytest.raises(ValueError, match="shape"):
        register(name="fresh_op", tensor={"shape": relu})(relu)
    with pytest.raises(ValueError, match="sum"):
        register(name="fresh_op", tensor={"sum": relu})(relu)
    assert (dict(OPS), dict(vars(Tensor))) == before


def test_operators_and_methods_are_the_ops() -> None:
    a = gnn.tensor([[1.0, -2.0], [3.0, 4.0]])
    b = gnn.tensor([[0.5, 2.0], [1.0, -1.0]])
    np_a, np_b = a.numpy(), b.numpy()
    assert (2 - a).tolist() == (2 - np_a).tolist()
    assert (a @ b).tolist() == (np_a @ np_b).tolist()
    assert a.T.tolist() == np_a.T.tolist()
    assert a.clip(0, 1).tolist() == F.clamp(a, 0, 1).tolist()
    assert gnn.add(a, b, alpha=2).tolist() == (np_a + 2 * np_b).tolist()
    assert gnn.div(a, b, rounding_mode="floor").tolist() == (np_a // np_b).tolist()
    assert {a: 1}[a] == 1  # Tensor.__eq__ is set after the class is made: hashing stays object's


def test_every_module_that_registers_ops_is_loaded_by_gnn_ops() -> None:
    import subprocess
    import sys

    ops_dir = ROOT / "gnn" / "ops"
    registering = {
        p.stem
        for p in ops_dir.glob("*.py")
        if p.stem not in ("__init__", "registry") and "register(" in p.read_text(encoding="utf-8")
    }
    listing = "import sys, gnn.ops; print(' '.join(m for m in sys.modules if m[:4] == 'gnn.'))"
    out = subprocess.run(
        [sys.executable, "-c", listing], capture_output=True, text=True, check=True, cwd=ROOT
    )
    loaded = {name.rsplit(".", 1)[1] for name in out.stdout.split() if name.startswith("gnn.ops.")}
    assert registering and registering <= loaded, (
        f"not loaded by importing gnn.ops: {sorted(registering - loaded)}"
    )


def test_the_functional_stub_matches_the_registry() -> None:
    # gnn/functional.pyi is what mypy reads for gnn.functional (every F.<op> call is checked
    # against the op's own signature); a new or renamed op must regenerate it.
    path = Path(__file__).resolve().parents[1] / "ci" / "functional_stub.py"
    spec = importlib.util.spec_from_file_location("functional_stub", path)
    assert spec is not None and spec.loader is not None
    stub = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stub)
    assert stub.STUB.read_text() == stub.stub_text(), (
        "gnn/functional.pyi is out of date: run python ci/functional_stub.py --write"
    )
