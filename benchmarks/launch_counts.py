"""Launches, syncs, copies and bytes of one steady-state training step on the fake CuPy (issue 14).

Run with the fake CuPy on the path (tests/fake_gpu), as the gpu tests do:

    GNN_FAKE_CUDA=1 python benchmarks/launch_counts.py [--small] [--models mlp,cnn,lstm,gpt]
        [--top N] [--bytes-top N] [--gpt-tokens N] [--json PATH]

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
`--small` shrinks every width (tests/test_launch_budget.py uses it). The launch count stays the
same except for the LSTM, 2 more when narrow (281 against 279 on 2026-12-04): its two bias gradients
go into their flat-buffer homes with one launch when the buffer holds them back to back, which the
256-byte alignment allows at width 256 but not at 8.
`--estimate` prints the H100 step-time estimate of docs/performance.md from the counts (an
estimate from counted work and datasheet figures, not a measurement; see `estimate`).
`--bytes-top N` lists, per model, the N sources that move the most bytes outside cuBLAS calls
(with the kernels or ufuncs that move them); `--json PATH` writes the counts as JSON.
"""

from __future__ import annotations

import argparse
import json
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


# The H100 estimate's constants (docs/performance.md states where each comes from).
H100_FP32_FLOPS = 67e12  # H100 SXM datasheet, FP32 without tensor cores: gnn's matmuls (no TF32)
H100_TF32_FLOPS = 494.7e12  # the same datasheet, dense TF32 tensor cores (989 with sparsity)
H100_HBM_BYTES_PER_S = 3.35e12  # the same datasheet, HBM3
LAUNCH_HOST_SECONDS = (10e-6, 30e-6)  # host cost of one CuPy launch, the issue's range
# A replayed step (GraphedStep in gnn/train/cuda_graph.py; see benchmarks/cuda_graph_counts.py):
# one copy into each of the two static inputs, then one graph launch.
GRAPH_LAUNCHES = 3


def matmul_flops(name: str, gpt_batch: int = 1, gpt_tokens: int = 64) -> float:
    """Multiply-add FLOPs (2 per multiply-add) of one full-size training step's products:
    forward, the weight gradients and the input gradients that are needed (not the first
    layer's input: the data does not require a gradient), from the shapes in this file."""
    if name == "mlp":  # 784-256-256-10, batch 128
        b, layers = 128, [(784, 256), (256, 256), (256, 10)]
        macs = sum(b * i * o for i, o in layers)
        return 2 * (2 * macs + sum(b * i * o for i, o in layers[1:]))
    if name == "cnn":  # im2col products of the two convolutions, then the linear layer
        b = 64
        conv1 = b * 28 * 28 * 16 * (1 * 9)
        conv2 = b * 14 * 14 * 32 * (16 * 9)
        fc = b * 32 * 7 * 7 * 10
        return 2 * (2 * (conv1 + conv2 + fc) + conv2 + fc)
    if name == "lstm":  # 2 layers x 256, seq 32, batch 32: x W_ih^T and h W_hh^T per step
        b, t, h = 32, 32, 256
        per_layer = b * t * (h * 4 * h + h * 4 * h)
        first_input = b * t * h * 4 * h  # layer 1's input gradient: not needed
        return 2 * (3 * 2 * per_layer - first_input) + 2 * 3 * b * h * 10
    if name == "gpt":  # 12 layers of 768; the tied 50257-word head; causal attention in full
        c, layers, vocab = 768, 12, 50257
        tokens = gpt_batch * gpt_tokens
        weights = layers * (c * 3 * c + c * c + c * 4 * c + 4 * c * c) + c * vocab
        attention = layers * 2 * gpt_batch * gpt_tokens**2 * c  # q k^T and p v
        return 2 * 3 * (tokens * weights + attention)
    raise ValueError(name)


def estimate(c: Any, flops: float, launches: int | None = None) -> dict[str, float]:
    """The H100 step-time estimate of docs/performance.md, in seconds (not a measurement).

    host: launches x the per-launch host cost (low and high end of the range);
    device: the products' time (their FLOPs at FP32 peak, or their bytes at HBM peak, whichever is
    longer) plus the bytes outside matmul at HBM peak. The step takes about the larger of the two.
    """
    launches = c.launches if launches is None else launches
    device = max(flops / H100_FP32_FLOPS, c.matmul_bytes / H100_HBM_BYTES_PER_S)
    device += c.bytes_outside_matmul / H100_HBM_BYTES_PER_S
    low, high = (launches * s for s in LAUNCH_HOST_SECONDS)
    return {"host_low": low, "host_high": high, "device": device}


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


def bytes_outside_matmul_by_source(c: Any) -> dict[str, tuple[int, dict[str, int]]]:
    """{source: (bytes, {kernel or ufunc: bytes})} of the launches outside cuBLAS, largest first."""
    totals: dict[str, tuple[int, dict[str, int]]] = {}
    for kind, name, source, nbytes in c.events:
        if kind in ("launch", "memset", "copy"):  # every launch kind but the matmuls
            total, names = totals.get(source, (0, {}))
            names[name] = names.get(name, 0) + nbytes
            totals[source] = (total + nbytes, names)
    return dict(sorted(totals.items(), key=lambda kv: -kv[1][0]))


def bytes_listing(c: Any, top: int) -> list[str]:
    """The `top` sources that move the most bytes outside matmul, each with its top kernels."""
    lines = []
    for source, (total, names) in list(bytes_outside_matmul_by_source(c).items())[:top]:
        kernels = sorted(names.items(), key=lambda kv: -kv[1])[:3]
        what = ", ".join(f"{name} {_gb(n)}" for name, n in kernels)
        lines.append(f"  {_gb(total):>7} GB  {source}  [{what}]")
    return lines


def as_json(results: dict[str, tuple[Step, Any, float]], bytes_top: int = 20) -> dict:
    """The counts of each model, and its top byte movers outside matmul, as plain data."""
    out = {}
    for name, (step, c, seconds) in results.items():
        out[name] = {
            "shape": step.shape,
            "launches": c.launches,
            "memsets": c.memsets,
            "hidden_copies": c.hidden_copies,
            "syncs": c.syncs,
            "h2d": c.h2d,
            "allocs": c.allocs,
            "bytes": c.bytes,
            "matmul_bytes": c.matmul_bytes,
            "bytes_outside_matmul": c.bytes_outside_matmul,
            "seconds": round(seconds, 1),
            "bytes_outside_matmul_by_source": {
                source: total
                for source, (total, _names) in list(bytes_outside_matmul_by_source(c).items())[
                    :bytes_top
                ]
            },
            "launches_by_source": c.by_source(),
        }
    return out


def estimate_table(results: dict[str, tuple[Step, Any, float]], gpt_tokens: int = 64) -> str:
    """The H100 estimate per model in milliseconds: eager, as a replayed CUDA graph (GRAPH_LAUNCHES
    host launches), and PyTorch eager's host time at the issue's launch counts."""
    torch_launches = {"mlp": (28, 22), "cnn": (37, 31), "lstm": (280, 280), "gpt": (484, 440)}
    lines = [
        "| model | matmul GFLOP | device ms | host ms (eager) | step ms (eager) "
        "| step ms (CUDA graph) | PyTorch eager host ms (foreach / fused launches) |",
        "|---|---|---|---|---|---|---|",
    ]

    def span(a: float, b: float) -> str:
        return f"{a * 1e3:.3g}" if f"{a:.3g}" == f"{b:.3g}" else f"{a * 1e3:.3g}-{b * 1e3:.3g}"

    for name, (_step, c, _seconds) in results.items():
        flops = matmul_flops(name, gpt_tokens=gpt_tokens)
        e = estimate(c, flops)
        g = estimate(c, flops, launches=GRAPH_LAUNCHES)
        t = [estimate(c, flops, launches=n) for n in torch_launches[name]]
        dev = e["device"]
        lines.append(
            f"| {name} | {flops / 1e9:.3g} | {dev * 1e3:.3g} "
            f"| {span(e['host_low'], e['host_high'])} "
            f"| {span(max(e['host_low'], dev), max(e['host_high'], dev))} "
            f"| {span(max(g['host_low'], dev), max(g['host_high'], dev))} "
            f"| {span(t[0]['host_low'], t[0]['host_high'])} / "
            f"{span(t[1]['host_low'], t[1]['host_high'])} |"
        )
    return "\n".join(lines)


def table(results: dict[str, tuple[Step, Any, float]], top: int = 3, bytes_top: int = 0) -> str:
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
        if bytes_top:
            lines.append(f"{name}: top sources of bytes outside matmul (GB)")
            lines.extend(bytes_listing(c, bytes_top))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mlp,cnn,lstm,gpt")
    parser.add_argument("--small", action="store_true", help="narrow models (same launches)")
    parser.add_argument("--top", type=int, default=8, help="sources listed per model")
    parser.add_argument(
        "--bytes-top", type=int, default=0, help="sources of bytes outside matmul listed per model"
    )
    parser.add_argument("--gpt-tokens", type=int, default=64)
    parser.add_argument("--gpt-batch", type=int, default=1)
    parser.add_argument("--json", help="also write the counts to this JSON file")
    parser.add_argument("--estimate", action="store_true", help="the H100 step-time estimate")
    args = parser.parse_args(argv)
    _fake_cupy()
    sys.path.insert(0, str(ROOT))
    results = {}
    for name in args.models.split(","):
        start = time.perf_counter()
        kwargs = {"batch": args.gpt_batch, "tokens": args.gpt_tokens} if name == "gpt" else {}
        step = MODELS[name](small=args.small, **kwargs)
        results[name] = (step, count(step), time.perf_counter() - start)
    print(table(results, top=args.top, bytes_top=args.bytes_top))
    if args.estimate and not args.small and args.gpt_batch == 1:
        print("\nH100 estimate from the counts (not a measurement):")
        print(estimate_table(results, gpt_tokens=args.gpt_tokens))
    if args.json:
        Path(args.json).write_text(json.dumps(as_json(results), indent=1) + "\n")


if __name__ == "__main__":
    main()
