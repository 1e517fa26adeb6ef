"""Run the benchmark suite and print each benchmark's median and its ratio to its baseline.

From the repository root, with gnn[dev] installed (torch too for the PyTorch baselines):

    python benchmarks/run.py [-k EXPR] [--json PATH] [--verbose] [--dir FOLDER]

It runs `pytest benchmarks --benchmark-only` in a subprocess, reads pytest-benchmark's JSON and
prints one row per benchmark: below 1 means faster than the baseline timed in the same run. The
current numbers per machine are in docs/performance.md; raw results go to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_suite(folder: Path, k: str | None = None, verbose: bool = False) -> tuple[dict, int]:
    """Run pytest-benchmark over folder; (the JSON results, pytest's exit status)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"no benchmarks folder at {folder}")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "bench.json")
        cmd = [sys.executable, "-m", "pytest", str(folder), "-q", "-p", "no:cacheprovider",
               "--benchmark-only", f"--benchmark-json={out}"]  # fmt: skip
        if k:
            cmd += ["-k", k]
        print("running: " + " ".join(cmd), flush=True)
        proc = subprocess.run(cmd, cwd=folder.parent, capture_output=not verbose, text=True)
        if not os.path.exists(out):
            tail = (proc.stdout or "")[-3000:] + (proc.stderr or "")[-2000:]
            raise RuntimeError(
                f"the benchmark run wrote no results (exit {proc.returncode}); "
                f"is pytest-benchmark installed (pip install 'gnn[dev]')?\n{tail}"
            )
        with open(out) as f:
            return json.load(f), proc.returncode


def bench_ratios(benchmarks: list[dict]) -> dict[int, tuple[float, str]]:
    """index -> (median / its group's baseline median, baseline name), from the results alone.

    Computed from each group's benchmark whose extra_info role is "baseline", so a results file
    written without gnn's benchmarks/conftest.py works too; a ratio already in extra_info is
    used when the group has no baseline.
    """
    base_of: dict[str, dict] = {}
    for b in benchmarks:
        if b.get("extra_info", {}).get("role") == "baseline":
            base_of.setdefault(b.get("group") or b["name"], b)
    out = {}
    for i, b in enumerate(benchmarks):
        base = base_of.get(b.get("group") or b["name"])
        extra = b.get("extra_info", {})
        if base is not None and base is not b and base["stats"]["median"] > 0:
            out[i] = (b["stats"]["median"] / base["stats"]["median"], base["name"])
        elif base is None and extra.get("ratio") is not None:
            out[i] = (float(extra["ratio"]), str(extra.get("baseline", "")))
    return out


def format_bench_table(results: dict) -> str:
    """A table of each benchmark's median and its ratio to its group's baseline (< 1: faster)."""
    benchmarks = results.get("benchmarks", [])
    ratios = bench_ratios(benchmarks)
    rows = [("group", "benchmark", "median ms", "ratio", "vs", "notes")]
    for i, b in enumerate(benchmarks):
        extra = dict(b.get("extra_info", {}))
        for key in ("ratio", "baseline"):
            extra.pop(key, None)
        role = extra.pop("role", "")
        target = extra.pop("target", None)
        versus = []  # second references (benchmarks/conftest.py "versus")
        for name, goal in extra.pop("versus", {}).items():
            other = extra.pop(f"ratio_vs_{name}", None)
            if other is not None:
                verdict = "meets" if other <= goal else "MISSES"
                versus.append(f"{other:.3f}x vs {name}: {verdict} target <= {goal}x")
        notes = ", ".join(versus + [f"{k}={v}" for k, v in extra.items()])
        ratio_text, base = "", ""
        if role == "baseline":
            ratio_text = "baseline"
        elif i in ratios:
            ratio, base = ratios[i]
            ratio_text = f"{ratio:.3f}x"
            if target is not None:
                verdict = "meets" if ratio <= float(target) else "MISSES"
                notes = f"{verdict} target <= {target}x" + (f", {notes}" if notes else "")
                target = None
        if target is not None:
            notes = f"target <= {target}x" + (f", {notes}" if notes else "")
        rows.append(
            (
                b.get("group") or "",
                b["name"],
                f"{b['stats']['median'] * 1e3:.3f}",
                ratio_text,
                base,
                notes,
            )
        )
    machine = results.get("machine_info", {})
    widths = [max(len(str(r[i])) for r in rows) for i in range(5)]
    lines = [
        f"machine: {machine.get('node', '?')}, {machine.get('cpu', {}).get('brand_raw', '?')}, "
        f"Python {machine.get('python_version', '?')}",
        "ratio = median / the baseline's median in the same run (below 1: faster)",
    ]
    for r in rows:
        lines.append(
            ("  ".join(str(c).ljust(w) for c, w in zip(r[:5], widths)) + "  " + r[5]).rstrip()
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite, print the ratio table, optionally keep the raw JSON; pytest's exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "-k", default=None, help="only benchmarks matching this pytest -k expression"
    )
    parser.add_argument("--dir", default=str(HERE), help="benchmarks folder (default: this one)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also keep the raw JSON")
    parser.add_argument("--verbose", action="store_true", help="show pytest's own output")
    args = parser.parse_args(argv)
    try:
        results, status = run_suite(Path(args.dir), args.k, args.verbose)
    except (RuntimeError, OSError) as exc:
        print(f"run.py: error: {exc}", file=sys.stderr)
        return 2
    print(format_bench_table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
        print(f"full results written to {args.json}")
    return status


if __name__ == "__main__":
    sys.exit(main())
