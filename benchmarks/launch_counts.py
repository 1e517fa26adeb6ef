"""Launches, syncs, copies and bytes of one steady-state training step on the fake CuPy (issue 14).

Run with the fake CuPy on the path (tests/fake_gpu), as the gpu tests do:

    GNN_FAKE_CUDA=1 python benchmarks/launch_counts.py [--small] [--models mlp,cnn,lstm,gpt]

Each model takes one warm-up step (kernels compiled, optimizer state made, caches filled), then
one step is counted: forward, loss, backward, optimizer step, zero_grad. The counts follow the
rules in tests/fake_gpu/cupy's docstring; they do not depend on batch size, bytes do.

The reference models:
- mlp: Linear 784-256, ReLU, Linear 256-256, ReLU, Linear 256-10; batch 128; Adam.
- cnn: Conv2d 1->16 3x3 pad 1, ReLU, MaxPool2d 2, Conv2d 16->32 3x3 pad 1, ReLU, MaxPool2d 2,
  Flatten, Linear 32*7*7-10, on 28x28 images; batch 64; Adam.
- lstm: LSTM 2 layers x 256 (input 256), seq 32, batch 32, then Linear 256-10 on the last step;
  Adam.
- gpt: GPT-2-small (12 layers, 12 heads, 768, vocab 50257, block 1024); AdamW; batch 1 x 64
  tokens by default (the NumPy stand-in's memory and time; bytes scale with the tokens).
`--small` shrinks every width (the launch count stays the same; the test uses it).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

# PyTorch eager's launches per step, from issue 14 (not measured here: there is no GPU).
TORCH_FROM_ISSUE = {
    "mlp": "28 / 22",
    "cnn": "37 / 31",
    "lstm": "about 280 (cuDNN)",
    "gpt": "about 484 / 440",
}
# The issue's targets: launches per step (fp32), and 0 syncs and 0 h2d copies for all four.
TARGETS = {"mlp": 22, "cnn": 31, "lstm": 280, "gpt": 440}


@dataclass
class Step:
    """A model ready for training steps: run() does one."""

    name: str
    shape: str
    run: Any


def _fake_cupy() -> Any:
    """The fake CuPy module (puts tests/fake_gpu first on sys.path if it is not already)."""
    path = str(ROOT / "tests" / "fake_gpu")
    if path not in sys.path:
        sys.path.insert(0, path)
    import cupy

    if not getattr(cupy, "FAKE", False):
        raise RuntimeError("counting needs the fake CuPy (tests/fake_gpu), not the real one")
    return cupy


def _trainer(model: Any, opt: Any, loss_fn: Any, x: Any, y: Any) -> Any:
    def run() -> None:
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()

    return run


def mlp(small: bool = False) -> Step:
    """MLP 784-256-256-10, batch 128, Adam."""
    import gnn
    from gnn import nn

    d_in, h, batch = (784, 256, 128) if not small else (24, 16, 8)
    rng = np.random.default_rng(0)
    model = nn.Sequential(
        nn.Linear(d_in, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, 10)
    ).to("cuda")
    opt = gnn.optim.Adam(model.parameters(), lr=1e-3)
    x = gnn.tensor(rng.standard_normal((batch, d_in)).astype(np.float32), device="cuda")
    y = gnn.tensor(rng.integers(0, 10, batch), device="cuda")
    return Step("mlp", f"batch {batch}", _trainer(model, opt, nn.CrossEntropyLoss(), x, y))


def cnn(small: bool = False) -> Step:
    """Conv 1->16, pool, conv 16->32, pool, linear to 10 on 28x28 images, Adam."""
    import gnn
    from gnn import nn

    side, c1, c2, batch = (28, 16, 32, 64) if not small else (8, 4, 8, 4)
    rng = np.random.default_rng(0)
    model = nn.Sequential(
        nn.Conv2d(1, c1, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(c2 * (side // 4) ** 2, 10),
    ).to("cuda")
    opt = gnn.optim.Adam(model.parameters(), lr=1e-3)
    x = gnn.tensor(rng.standard_normal((batch, 1, side, side)).astype(np.float32), device="cuda")
    y = gnn.tensor(rng.integers(0, 10, batch), device="cuda")
    return Step("cnn", f"batch {batch}", _trainer(model, opt, nn.CrossEntropyLoss(), x, y))


def lstm(small: bool = False) -> Step:
    """LSTM 2 layers x 256, seq 32, batch 32, a linear head on the last step, Adam."""
    import gnn
    from gnn import nn

    h, seq, batch = (256, 32, 32) if not small else (8, 32, 2)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.LSTM(h, h, num_layers=2, batch_first=True)
            self.head = nn.Linear(h, 10)

        def forward(self, x: Any) -> Any:
            out, _ = self.rnn(x)
            return self.head(out[:, -1])

    rng = np.random.default_rng(0)
    model = Net().to("cuda")
    opt = gnn.optim.Adam(model.parameters(), lr=1e-3)
    x = gnn.tensor(rng.standard_normal((batch, seq, h)).astype(np.float32), device="cuda")
    y = gnn.tensor(rng.integers(0, 10, batch), device="cuda")
    return Step("lstm", f"batch {batch}", _trainer(model, opt, nn.CrossEntropyLoss(), x, y))


def gpt(small: bool = False, batch: int = 1, tokens: int = 64) -> Step:
    """GPT-2-small (12 layers, 12 heads, 768, vocab 50257), AdamW, batch x tokens ids."""
    import gnn
    from gnn.models.gpt import GPT, GPTConfig

    if small:
        config = GPTConfig(vocab_size=97, block_size=16, n_layer=12, n_head=12, n_embd=24)
        batch, tokens = 1, 8
    else:
        config = GPTConfig(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768)
    gnn.manual_seed(0)
    model = GPT(config).to("cuda")
    opt = gnn.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, config.vocab_size, (batch, tokens + 1))
    x = gnn.tensor(ids[:, :-1], device="cuda")
    y = gnn.tensor(ids[:, 1:], device="cuda")

    def run() -> None:
        _, loss = model(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad()

    return Step("gpt", f"batch {batch} x {tokens} tokens", run)


MODELS = {"mlp": mlp, "cnn": cnn, "lstm": lstm, "gpt": gpt}


def count(step: Step, warmup: int = 1) -> Any:
    """The fake CuPy's Counts of one training step after `warmup` uncounted ones."""
    cupy = _fake_cupy()
    for _ in range(warmup):
        step.run()
    with cupy.counting() as counts:
        step.run()
    return counts


def _gb(n: int) -> str:
    return f"{n / 1e9:.3f}"


def table(results: dict[str, tuple[Step, Any, float]], top: int = 3) -> str:
    """The issue's table: gnn's counts next to PyTorch eager's (the issue's figures)."""
    lines = [
        "| model | shape | gnn launches | memsets | hidden copies | syncs | h2d | allocs "
        "| GB outside matmul | GB total | PyTorch eager (foreach / fused), from the issue, "
        "not measured here | target |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, (step, c, _seconds) in results.items():
        lines.append(
            f"| {name} | {step.shape} | {c.launches} | {c.memsets} | {c.hidden_copies} "
            f"| {c.syncs} | {c.h2d} | {c.allocs} | {_gb(c.bytes_outside_matmul)} | {_gb(c.bytes)} "
            f"| {TORCH_FROM_ISSUE[name]} | {TARGETS[name]} |"
        )
    for name, (_step, c, seconds) in results.items():
        lines.append(f"\n{name} ({seconds:.1f} s): top sources of launches")
        for source, n in list(c.by_source().items())[:top]:
            lines.append(f"  {n:6d}  {source}")
        syncs = c.by_source("syncs")
        if syncs:
            lines.append(f"  syncs: {syncs}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mlp,cnn,lstm,gpt")
    parser.add_argument("--small", action="store_true", help="narrow models (same launches)")
    parser.add_argument("--top", type=int, default=8, help="sources listed per model")
    parser.add_argument("--gpt-tokens", type=int, default=64)
    args = parser.parse_args(argv)
    _fake_cupy()
    sys.path.insert(0, str(ROOT))
    results = {}
    for name in args.models.split(","):
        start = time.perf_counter()
        kwargs = {"tokens": args.gpt_tokens} if name == "gpt" else {}
        step = MODELS[name](small=args.small, **kwargs)
        results[name] = (step, count(step), time.perf_counter() - start)
    print(table(results, top=args.top))


if __name__ == "__main__":
    main()
