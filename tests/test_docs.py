"""The repository stands alone: docs, scripts and sources cite only files inside it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# What is scanned for references that leave the repository: everything a reader or a user runs.
SCANNED_DIRS = ("docs", "ci", "benchmarks", "gnn", "examples", "kernels")
SUFFIXES = {".md", ".py", ".sh", ".toml", ".cu", ".cuh", ".txt", ".cfg"}

# A path outside the repository: the session-shared folder, a climb out of the tree, or an
# absolute path into someone's filesystem. /tmp and /dev stay allowed: scratch space in a command
# is not a citation.
OUTSIDE = re.compile(
    r"(?<![\w./-])(?:\.\./|shared/)"
    r"|(?<![\w./:-])/(?:work|home|root|usr|opt|mnt|srv|var|etc|Users)/"
)
MD_LINK = re.compile(r"\]\(([^)\s]+)\)")
# A backticked path into one of the repository's own top-level folders: it must exist.
REPO_PATH = re.compile(
    r"`((?:docs|benchmarks|ci|gnn|tests|examples|kernels)/[\w./-]+\.(?:md|py|sh|json|cu|cuh))`"
)


def tracked_files() -> list[Path]:
    """The files git tracks (or, outside a checkout, every file) under the scanned folders."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        names = [ROOT / n for n in out.splitlines()]
    except (OSError, subprocess.CalledProcessError):
        names = [p for d in SCANNED_DIRS for p in (ROOT / d).rglob("*")]
    picked = [
        p
        for p in names
        if p.is_file()
        and p.suffix in SUFFIXES
        and (p.parent == ROOT or p.relative_to(ROOT).parts[0] in SCANNED_DIRS)
        and "data" not in p.relative_to(ROOT).parts  # shipped data sets, not prose or code
    ]
    return sorted(set(picked))


def outside_references(text: str) -> list[str]:
    """Each line of text that cites a path outside the repository."""
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if not line.startswith("#!") and OUTSIDE.search(line)]


def broken_links(doc: Path, text: str) -> list[str]:
    """Relative Markdown links and backticked repository paths in doc that name no file."""
    bad = []
    for target in MD_LINK.findall(text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a URL or an anchor on the same page
        path = target.split("#", 1)[0]
        if not (doc.parent / path).exists():
            bad.append(target)
    placeholder = re.compile(r"[A-Z]{3,}")  # `kernels/NAME.cu` stands for any kernel
    bad += [
        p for p in REPO_PATH.findall(text) if not placeholder.search(p) and not (ROOT / p).exists()
    ]
    return bad


def test_the_detector_catches_outside_paths() -> None:
    assert outside_references("see `shared/gpu.md` for the method")
    assert outside_references("run ../other/script.sh")
    assert outside_references("read /work/notes.md")
    assert outside_references("cp x /home/me/")
    assert not outside_references("#!/usr/bin/env bash")  # a shebang runs, it cites nothing
    assert not outside_references("pip install --target /tmp/nvrtc pkg")
    assert not outside_references("docs/gpu-method.md and gnn/backend/numpy.py")
    assert not outside_references("https://example.org/usr/share/x")


def test_the_link_checker_catches_missing_files(tmp_path: Path) -> None:
    doc = tmp_path / "a.md"
    text = "[b](b.md) [here](#x) [web](https://x.org) `docs/no-such-file.md` `docs/kernels.md`"
    text += " `gnn/NAME.py`"
    assert broken_links(doc, text) == ["b.md", "docs/no-such-file.md"]
    (tmp_path / "b.md").write_text("")
    assert broken_links(doc, text) == ["docs/no-such-file.md"]


def test_scan_covers_docs_scripts_and_sources() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in tracked_files()}
    for expected in ("README.md", "docs/architecture.md", "ci/check.sh", "gnn/tensor.py"):
        assert expected in names


@pytest.mark.parametrize("path", tracked_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_reference_outside_the_repository(path: Path) -> None:
    assert outside_references(path.read_text(encoding="utf-8", errors="replace")) == []


@pytest.mark.parametrize(
    "doc", [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))], ids=lambda p: p.name
)
def test_doc_links_name_files_in_the_repository(doc: Path) -> None:
    assert broken_links(doc, doc.read_text(encoding="utf-8")) == []
