"""ci/core_lines.py: code lines counted exactly (no blanks, comments, docstrings); the gate."""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("core_lines", ROOT / "ci" / "core_lines.py")
core_lines = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(core_lines)


def count(source: str) -> int:
    return core_lines.code_lines(textwrap.dedent(source))


def test_blank_and_comment_lines_do_not_count():
    assert count("\n\n# a comment\n    \n") == 0
    assert count("x = 1\n\n# why\ny = 2  # trailing comments do not hide code\n") == 2


def test_docstrings_do_not_count_but_code_strings_do():
    source = '''
        """Module docstring,
        over two lines."""

        def f(a):
            """One line."""
            return a


        class C:
            """Class docstring."""

            text = """a string that is data,
            over two lines"""
    '''
    # def f, return a, class C, and the two lines of the assigned string
    assert count(source) == 5


def test_every_line_of_a_split_statement_counts():
    source = """
        total = f(
            1,  # first
            2,
        )
    """
    assert count(source) == 4


def test_core_files_come_from_the_marked_block(tmp_path: Path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text('"""Doc."""\nx = 1\n')
    (tmp_path / "pkg" / "b.py").write_text("y = 2\nz = 3\n")
    (tmp_path / "pkg" / "other.py").write_text("w = 4\n")
    doc = tmp_path / "docs" / "architecture.md"
    doc.write_text(
        "`pkg/other.py` is outside the block\n"
        "<!-- core-files: begin -->\n- `pkg/a.py`\n- `pkg/b*.py`\n<!-- core-files: end -->\n"
    )
    assert [p.name for p in core_lines.core_files(doc, tmp_path)] == ["a.py", "b.py"]
    assert core_lines.main(["--doc", str(doc), "--max", "3"]) == 0
    assert core_lines.main(["--doc", str(doc), "--max", "2"]) == 1


def test_a_pattern_that_matches_nothing_is_an_error(tmp_path: Path):
    doc = tmp_path / "arch.md"
    doc.write_text("<!-- core-files: begin -->\n`gone/*.py`\n<!-- core-files: end -->\n")
    with pytest.raises(ValueError, match="matches nothing"):
        core_lines.core_files(doc, tmp_path)


def test_the_repository_lists_its_core():
    names = {
        p.relative_to(ROOT).as_posix() for p in core_lines.core_files(ROOT / "docs/architecture.md")
    }
    assert {"gnn/autograd.py", "gnn/tensor.py", "gnn/nn/module.py", "gnn/backend/numpy.py"} <= names
