"""Write gnn/functional.pyi: the registered op functions, re-exported from where they are defined.

gnn/functional.py fills its namespace from the op registry at import time, which mypy cannot
follow; without a stub every `F.<op>(...)` call in the package would be unchecked (Any). The stub
imports each function under its registered name from the module that defines it, so mypy checks
calls against the real signatures. tests/test_registry.py fails when the stub and the registry
disagree; regenerate with

    python ci/functional_stub.py --write
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

STUB = Path(__file__).resolve().parents[1] / "gnn" / "functional.pyi"
HEADER = '''"""Type stub of gnn/functional.py, generated from the op registry by
ci/functional_stub.py (do not edit: regenerate with `python ci/functional_stub.py --write`)."""

'''


def stub_text() -> str:
    """The stub's text for the ops registered now (import gnn first)."""
    import gnn  # noqa: F401  (loads every op module, which registers its ops)
    from gnn.ops import registry

    modules = {k: m for k, m in sorted(sys.modules.items()) if k.startswith("gnn.ops.") and m}
    lines: list[tuple[str, str, str]] = []  # (module, name bound there, registered name)
    for name, fn in sorted(registry.functions().items()):
        # the module-level name the function is bound to: where a factory made it, that is the
        # module that called the factory, not fn.__module__
        home = sys.modules[fn.__module__]
        places = [home, *(m for m in modules.values() if m is not home)]
        found = next(((m.__name__, k) for m in places for k, v in vars(m).items() if v is fn), None)
        if found is None:
            raise LookupError(f"op {name!r} is not bound to a name in any gnn.ops module")
        lines.append((*found, name))
    # isort's order, so that ruff passes the file as written; __all__ makes the renamed imports
    # re-exports (a stub re-exports only `import a as a` and the names in __all__)
    imports = [f"from {m} import {bound} as {name}" for m, bound, name in sorted(lines)]
    names = "".join(f'    "{name}",\n' for _, _, name in sorted(lines, key=lambda r: r[2]))
    return HEADER + "\n".join(imports) + "\n\n__all__ = [\n" + names + "]\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help="write the stub (else print it)")
    args = parser.parse_args()
    text = stub_text()
    if args.write:
        STUB.write_text(text)
        print(f"wrote {STUB}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
