"""The `gnn` command: `gnn info`, `gnn train NAME` (more subcommands join as they are built)."""

from __future__ import annotations

import argparse
import importlib
import platform
import sys
import time
from collections.abc import Sequence

# name -> module in gnn.examples (each has main(args) -> dict of metrics)
EXAMPLES = {"xor": "xor"}


def _info(args: argparse.Namespace) -> int:
    import numpy as np

    import gnn

    print(f"gnn {gnn.__version__}  (Python {platform.python_version()}, NumPy {np.__version__})")
    print(f"default device: {gnn.get_default_device()}, default dtype: {gnn.get_default_dtype()}")
    print("backends: cpu (NumPy)", end="")
    if gnn.cuda_available():
        from gnn.backend import get_backend

        be = get_backend("cuda")
        cupy = be.xp
        props = cupy.cuda.runtime.getDeviceProperties(0)
        free, total = cupy.cuda.runtime.memGetInfo()
        print(", cuda (CuPy)")
        print(f"GPU 0: {props['name'].decode()}, {total / 2**30:.1f} GiB ({free / 2**30:.1f} free)")
        print(f"CuPy {cupy.__version__}, CUDA runtime {cupy.cuda.runtime.runtimeGetVersion()}")
    else:
        print("; cuda: not available (no CuPy or no GPU; pip install 'gnn[cuda12]' or 'gnn[cuda13]')")
    return 0


def _train(args: argparse.Namespace) -> int:
    import gnn

    if args.device:
        gnn.set_default_device(args.device)
    module = importlib.import_module(f"gnn.examples.{EXAMPLES[args.example]}")
    start = time.perf_counter()
    metrics = module.main(args)
    took = time.perf_counter() - start
    summary = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())
    print(f"done in {took:.1f} s: {summary}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gnn", description="gnn: train and inspect models.")
    sub = parser.add_subparsers(dest="command", required=True)

    info = sub.add_parser("info", help="version, backends, GPU")
    info.set_defaults(func=_info)

    train = sub.add_parser("train", help="train a shipped example")
    train.add_argument("example", choices=sorted(EXAMPLES), help="which example to train")
    train.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: GNN_DEVICE or cpu)")
    train.add_argument("--epochs", type=int, default=None, help="epochs (steps for xor)")
    train.add_argument("--batch-size", type=int, default=None)
    train.add_argument("--lr", type=float, default=None, help="learning rate")
    train.add_argument("--seed", type=int, default=None)
    train.add_argument("--save", default=None, metavar="PATH", help="save the trained weights")
    train.add_argument("--plot", default=None, metavar="PATH", help="write training curves (PNG)")
    train.set_defaults(func=_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, RuntimeError, FileNotFoundError) as exc:
        print(f"gnn: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
