"""Imports point down the layers of the house (docs/architecture.md), and only the CUDA backend
imports CuPy.

Every module under gnn/ is parsed with `ast`; imports inside functions count too. Imports under
`if TYPE_CHECKING:` never run and are skipped. gnn/__init__.py is the public facade, not a layer:
it may import anything (its heavier subpackages lazily, through __getattr__), and importing the
facade (`import gnn`) counts as importing what it loads eagerly, i.e. the functional layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

GNN = Path(__file__).resolve().parents[1] / "gnn"

# Lowest first. A module may import its own layer and the ones below it.
LAYERS = [
    ["gnn.config", "gnn.dtypes"],
    ["gnn.backend"],
    ["gnn.autograd"],
    ["gnn.tensor", "gnn.creation"],
    ["gnn.ops"],
    ["gnn.functional", "gnn"],  # `import gnn`: the facade eagerly loads functional and below
    # testing: the gradient checker (used by tests, on Tensors); datasets: the shipped files;
    # distributed: collectives on Tensors (nn.parallel and data.sampler build on it)
    [
        "gnn.nn",
        "gnn.optim",
        "gnn.data",
        "gnn.io",
        "gnn.datasets",
        "gnn.testing",
        "gnn.distributed",
        "gnn.amp",  # amp: GradScaler agrees on infs over gnn.distributed
    ],
    ["gnn.train", "gnn.models", "gnn.onnx"],  # models: GPT and its tokenizer; onnx: export
    ["gnn.serialization", "gnn.utils"],  # torch-style save/load over gnn.io; utils.data
    ["gnn.layers", "gnn.simple", "gnn.callbacks", "gnn.losses", "gnn.metrics", "gnn.optimizers"],
    ["gnn.examples"],
    ["gnn.cli", "gnn.__main__"],
]
LEVEL = {name: i for i, names in enumerate(LAYERS) for name in names}
CUPY_ALLOWED = {"gnn.backend.cuda", "gnn.backend.nccl"}  # nccl: CuPy's NCCL bindings


def level(module: str) -> int | None:
    """The layer of a gnn module: its longest listed prefix (gnn.nn.linear -> gnn.nn)."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in LEVEL:
            return LEVEL[".".join(parts[:n])]
    return None


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and ast.unparse(test).endswith("TYPE_CHECKING")


def imported_names(tree: ast.AST, package: str) -> list[tuple[int, str]]:
    """(line, module) for every import in `tree`, skipping `if TYPE_CHECKING:` blocks."""
    found: list[tuple[int, str]] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        if _is_type_checking(node):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            # `from gnn import nn` imports the submodule gnn.nn; `from gnn import tensor` too.
            found += [(node.lineno, _submodule_or(base, a.name)) for a in node.names]
        elif (
            isinstance(node, ast.Call)
            and ast.unparse(node.func) in ("importlib.import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            found.append((node.lineno, node.args[0].value))
    return sorted(found)


def _submodule_or(base: str, name: str) -> str:
    if base.split(".")[0] != "gnn":
        return base
    path = GNN.parent.joinpath(*base.split("."), name)
    return f"{base}.{name}" if path.with_suffix(".py").exists() or path.is_dir() else base


def check_source(source: str, module: str, is_package: bool = False) -> list[str]:
    """Every import of `module` (given as source text) that breaks the rules, one line each."""
    package = module if is_package else module.rpartition(".")[0]
    own = level(module)
    problems = []
    for line, target in imported_names(ast.parse(source), package):
        root = target.split(".")[0]
        if root in ("cupy", "cupyx") and module not in CUPY_ALLOWED:
            problems.append(
                f"{module}:{line}: imports {target} (only {', '.join(sorted(CUPY_ALLOWED))} may)"
            )
        elif root == "gnn" and module != "gnn":
            theirs = level(target)
            if own is None or theirs is None:
                problems.append(f"{module}:{line}: {target}: module missing from LAYERS")
            elif theirs > own:
                problems.append(
                    f"{module}:{line}: imports {target} (layer {theirs}, "
                    f"{LAYERS[theirs][0]}), above its own layer {own} ({LAYERS[own][0]})"
                )
    return problems


def all_modules() -> list[tuple[Path, str, bool]]:
    out = []
    for path in sorted(GNN.rglob("*.py")):
        parts = path.relative_to(GNN.parent).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        out.append((path, ".".join(parts[:-1] if is_package else parts), is_package))
    return out


def test_every_module_is_checked() -> None:
    modules = {name for _, name, _ in all_modules()}
    assert {"gnn", "gnn.autograd", "gnn.backend.cuda", "gnn.ops.linalg", "gnn.cli"} <= modules
    assert all(level(name) is not None for name in modules - {"gnn"}), sorted(
        name for name in modules if level(name) is None
    )


def test_imports_point_down_and_only_cuda_backend_imports_cupy() -> None:
    problems = []
    for path, module, is_package in all_modules():
        problems += check_source(path.read_text(encoding="utf-8"), module, is_package)
    assert not problems, "imports that break the layers:\n" + "\n".join(problems)


PLANTED = """
import numpy as np
from gnn import config
from gnn.tensor import Tensor
from gnn import functional as F
import cupy

if TYPE_CHECKING:
    from gnn.nn import Module

def lazy():
    from gnn.train import fit
    import importlib
    importlib.import_module("gnn.cli")
    from .ops.shape import reshape
"""


def test_checker_catches_planted_violations() -> None:
    problems = check_source(PLANTED, "gnn.autograd")
    text = "\n".join(problems)
    assert len(problems) == 6, text
    for bad in ("gnn.tensor", "gnn.functional", "cupy", "gnn.train", "gnn.cli", "gnn.ops.shape"):
        assert f"imports {bad} " in text, (bad, text)
    assert "gnn.config" not in text and "gnn.nn" not in text and "numpy" not in text


def test_checker_resolves_relative_and_submodule_imports() -> None:
    # gnn/ops/linalg.py: `from . import shape` is gnn.ops.shape (same layer), `from .. import nn`
    # is gnn.nn (above); `import gnn` from below the facade's layer is an upward import too.
    source = "from . import shape\nfrom .. import nn\nimport gnn\n"
    problems = check_source(source, "gnn.ops.linalg")
    assert [p.split(" (")[0] for p in problems] == [
        "gnn.ops.linalg:2: imports gnn.nn",
        "gnn.ops.linalg:3: imports gnn",
    ]
    assert check_source("import cupy\nimport cupyx.scipy\n", "gnn.backend.cuda") == []
    assert len(check_source("import cupyx\n", "gnn.backend.numpy")) == 1
