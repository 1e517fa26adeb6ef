"""Launches, syncs and allocations per training step, eager and as a replayed CUDA graph.

    GNN_FAKE_CUDA=1 python benchmarks/cuda_graph_counts.py

Counted on the fake CuPy (tests/fake_gpu), so the numbers are what the steps ask of a GPU, not
times. Models: the MLP of launch_counts.py (784-256-256-10, batch 128, Adam) and a small GPT
(2 layers, 2 heads, 32 wide, vocab 65, 2 x 16 tokens, AdamW). A graphed step is GraphedStep
(gnn/train/cuda_graph.py): a copy into each static input, then one graph launch.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _fake_cupy() -> Any:
    path = str(ROOT / "tests" / "fake_gpu")
    if path not in sys.path:
        sys.path.insert(0, path)
    import cupy

    if not getattr(cupy, "FAKE", False):
        raise RuntimeError("counting needs the fake CuPy (tests/fake_gpu), not the real one")
    return cupy


def mlp() -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """One MLP training step and its batch."""
    import gnn
    import gnn.functional as F
    from gnn import nn

    rng = np.random.default_rng(0)
    model = nn.Sequential(
        nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)
    ).to("cuda")
    opt = gnn.optim.Adam(model.parameters(), lr=1e-3)

    def step(x: Any, y: Any) -> Any:
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    x = gnn.tensor(rng.standard_normal((128, 784)).astype(np.float32), device="cuda")
    return step, (x, gnn.tensor(rng.integers(0, 10, 128), device="cuda"))


def gpt() -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """One small-GPT training step and its batch."""
    import gnn
    from gnn.models.gpt import GPT, GPTConfig

    config = GPTConfig(vocab_size=65, block_size=16, n_layer=2, n_head=2, n_embd=32)
    model = GPT(config).to("cuda")
    opt = gnn.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)

    def step(x: Any, y: Any) -> Any:
        opt.zero_grad()
        _, loss = model(x, y)
        loss.backward()
        opt.step()
        return loss

    ids = np.random.default_rng(0).integers(0, 65, (2, 17))
    x, y = gnn.tensor(ids[:, :-1], device="cuda"), gnn.tensor(ids[:, 1:], device="cuda")
    return step, (x, y)


def main() -> None:
    cupy = _fake_cupy()
    import gnn
    from gnn.train.cuda_graph import GraphedStep

    print(f"{'model':6} {'mode':8} {'launches':>9} {'syncs':>6} {'allocs':>7} {'h2d':>4} {'MB':>7}")
    for name, make in (("mlp", mlp), ("gpt", gpt)):
        for mode in ("eager", "graphed"):
            gnn.manual_seed(0)
            step, batch = make()
            step = GraphedStep(step, warmup=2) if mode == "graphed" else step
            for _ in range(3):  # warm-up (a GraphedStep captures on its third call)
                step(*batch)
            with cupy.counting() as c:
                loss = step(*batch)
            loss.item()  # one sync after the count: the pending device checks are read
            counts = f"{c.launches:9d} {c.syncs:6d} {c.allocs:7d} {c.h2d:4d} {c.bytes / 1e6:7.2f}"
            print(f"{name:6} {mode:8} {counts}")


if __name__ == "__main__":
    main()
