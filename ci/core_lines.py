"""Count the code lines of gnn's core files (listed in docs/architecture.md) against a ceiling.

    python ci/core_lines.py [--max N] [--doc docs/architecture.md]

The core files are the backticked paths (globs allowed) between the `core-files: begin` and
`core-files: end` markers of docs/architecture.md. A physical line is a code line when it holds
a Python token other than a comment: blank lines, comment-only lines and docstrings (a string
literal standing alone as a statement, each line it spans) do not count; every line of a
multi-line statement does. Prints one row per file and the total; with --max N, exits 1 when the
total is above N.
"""

from __future__ import annotations

import argparse
import ast
import io
import re
import sys
import tokenize
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "core-files: begin", "core-files: end"
_NOT_CODE = {
    tokenize.COMMENT,
    tokenize.NL,
    tokenize.NEWLINE,
    tokenize.INDENT,
    tokenize.DEDENT,
    tokenize.ENCODING,
    tokenize.ENDMARKER,
}


def code_lines(source: str) -> int:
    """The number of lines of source holding code: no blanks, comments or docstrings."""
    rows: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in _NOT_CODE:
            rows.update(range(tok.start[0], tok.end[0] + 1))
    for node in ast.walk(ast.parse(source)):
        is_doc = (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        )
        if is_doc:
            rows.difference_update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return len(rows)


def core_files(doc: Path, root: Path = ROOT) -> list[Path]:
    """The files named between the core-files markers of doc, globs expanded, sorted."""
    text = doc.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise ValueError(f"{doc}: no '{BEGIN}' ... '{END}' block")
    block = text.split(BEGIN, 1)[1].split(END, 1)[0]
    files: set[Path] = set()
    for pattern in re.findall(r"`([^`]+\.py)`", block):
        found = sorted(root.glob(pattern))
        if not found:
            raise ValueError(f"{doc}: core file pattern {pattern!r} matches nothing")
        files.update(found)
    return sorted(files)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the per-file table and total; 1 when the total is above --max, else 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max", type=int, default=None, help="fail above this many code lines")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "architecture.md")
    args = parser.parse_args(argv)
    root = args.doc.resolve().parents[1]
    counts = [(p.relative_to(root).as_posix(), code_lines(p.read_text("utf-8"))) for p in
              core_files(args.doc, root)]  # fmt: skip
    width = max(len(name) for name, _ in counts)
    for name, n in counts:
        print(f"{name.ljust(width)}  {n:6d}")
    total = sum(n for _, n in counts)
    print(f"{'total'.ljust(width)}  {total:6d}")
    if args.max is not None and total > args.max:
        print(f"core code lines: {total}, above the ceiling of {args.max}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
