"""Benchmark conventions: workloads in one pytest-benchmark group are compared with its baseline.

Mark the baseline of a group with `benchmark.extra_info["role"] = "baseline"`. At the end of the
run every other benchmark in the group gets `extra_info["ratio"]` = its median / the baseline's
median (so < 1 is faster than the baseline), which lands in the JSON (--benchmark-json) and in
the table printed after pytest-benchmark's own. A benchmark may also name a second reference in
its group, `extra_info["versus"] = {"<benchmark name>": target}`, and gets `ratio_vs_<name>`.
A benchmark that also times itself in turns with the baseline puts the per-pair ratios in
`extra_info["paired_ratios"]` (with a `versus` benchmark: `paired_ratios_vs_<name>`); their
median is reported next to the ratio of medians.
"""

from __future__ import annotations

import statistics

import pytest

from gnn.backend import host_memory


def pytest_configure(config: pytest.Config) -> None:
    """Raise glibc's allocator thresholds for the whole run, as a training program would."""
    # gnn leaves process-wide settings to the program; without these the LSTM step pays page
    # faults every step (see gnn/backend/host_memory.py). The NumPy baselines profit alike.
    host_memory.tune_malloc()


def _benchmarks(config: pytest.Config) -> list:
    session = getattr(config, "_benchmarksession", None)
    return [b for b in getattr(session, "benchmarks", []) if b and b.stats]


def _fill_ratios(config: pytest.Config) -> list[tuple[str, str, float, float]]:
    rows = []
    by_group: dict[str, list] = {}
    for b in _benchmarks(config):
        by_group.setdefault(b.group or b.name, []).append(b)
    for group, benches in by_group.items():
        base = next((b for b in benches if b.extra_info.get("role") == "baseline"), None)
        if base is None:
            continue
        by_name = {b.name: b for b in benches}
        for b in benches:
            if b is base:
                continue
            ratio = b.stats.median / base.stats.median
            b.extra_info["ratio"] = round(ratio, 4)
            b.extra_info["baseline"] = base.name
            rows.append((group, b.name, ratio, b.extra_info.get("target", float("nan"))))
            for name, target in b.extra_info.get("versus", {}).items():
                other = by_name.get(name)
                if other is None:  # e.g. PyTorch is not installed
                    continue
                ratio = b.stats.median / other.stats.median
                b.extra_info[f"ratio_vs_{name}"] = round(ratio, 4)
                rows.append((group, f"{b.name} / {name}", ratio, target))
            for name, target in b.extra_info.get("versus", {}).items():
                paired = b.extra_info.get(f"paired_ratios_vs_{name}")
                if paired:
                    median = statistics.median(paired)
                    b.extra_info[f"paired_ratio_median_vs_{name}"] = median
                    label = f"{b.name} / {name} (in turns, median of pairs)"
                    rows.append((group, label, median, target))
            paired = b.extra_info.get("paired_ratios")
            if paired:  # per-pair ratios of runs taken in turns with the baseline (see the test)
                median = statistics.median(paired)
                b.extra_info["paired_ratio_median"] = median
                goal = b.extra_info.get("target", float("nan"))
                rows.append((group, f"{b.name} (in turns, median of pairs)", median, goal))
    return rows


def _ratio_rows(config: pytest.Config) -> list[tuple[str, str, float, float]]:
    """The ratios, worked out once (the JSON hook and the summary both ask)."""
    if not hasattr(config, "_gnn_ratio_rows"):
        config._gnn_ratio_rows = _fill_ratios(config)
    return config._gnn_ratio_rows


def pytest_benchmark_update_json(
    config: pytest.Config, benchmarks: list, output_json: dict
) -> None:
    """Put the ratios into --benchmark-json (written before sessionfinish)."""
    _ratio_rows(config)
    extra = {b.fullname: b.extra_info for b in _benchmarks(config)}
    for entry in output_json.get("benchmarks", []):
        entry["extra_info"].update(extra.get(entry["fullname"], {}))


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    _ratio_rows(session.config)


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    rows = _ratio_rows(terminalreporter.config)
    if not rows:
        return
    terminalreporter.write_sep("-", "gnn: median time / baseline median (same run)")
    for group, name, ratio, target in rows:
        goal = f"  (target <= {target:g}x)" if target == target else ""
        terminalreporter.write_line(f"{group:28s} {name:56s} {ratio:6.3f}x{goal}")
