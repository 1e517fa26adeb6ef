"""Launches, syncs, copies and bytes of one training step of the four reference models (issue 14).

Counted on the fake CuPy (tests/fake_gpu), so it runs only with GNN_FAKE_CUDA=1 (or =emulate):

    GNN_FAKE_CUDA=1 python -m pytest -s -m gpu benchmarks/test_bench_launches.py

and prints the issue's table, gnn next to PyTorch eager's counts as the issue gives them (they are
not measured here: that needs a GPU). The full-size GPT-2-small step takes about a minute and
several GB on the NumPy stand-in; see benchmarks/launch_counts.py for the models and shapes.
The budgets are held by tests/test_launch_budget.py (narrow models, same counts).
"""

from __future__ import annotations

import os
import time

import launch_counts
import pytest

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        os.environ.get("GNN_FAKE_CUDA") not in ("1", "emulate"),
        reason="counts launches on the fake CuPy: run with GNN_FAKE_CUDA=1",
    ),
]


def test_launch_counts_of_the_reference_models(capsys: pytest.CaptureFixture) -> None:
    launch_counts._fake_cupy()  # before gnn first imports cupy
    results = {}
    for name, build in launch_counts.MODELS.items():
        start = time.perf_counter()
        step = build()
        results[name] = (step, launch_counts.count(step), time.perf_counter() - start)
    with capsys.disabled():
        print("\n" + launch_counts.table(results, top=8))
    for _step, counts, _ in results.values():
        assert counts.launches > 0
