"""CUDA tensors in a backend="mpi" group (copied through host memory), run by the gpu-marked test.

usage: cuda_over_mpi.py DEVICE OUT_DIR

Checks the collectives on DEVICE tensors, then trains 3 SGD steps of a small model under
DistributedDataParallel on halves of each batch (the whole batch on 1 rank) and writes
OUT_DIR/cuda_<world>_<rank>.npz with the final parameters and the collectives' results.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import gnn
import gnn.distributed as dist
from gnn import nn
from gnn.nn.parallel import DistributedDataParallel


def main(device: str, out: Path) -> None:
    gnn.set_default_dtype("float64")
    dist.init_process_group("mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    result: dict[str, np.ndarray] = {}

    t = gnn.tensor([1.0 + rank, -float(rank)], device=device)
    dist.all_reduce(t, "mean")
    result["mean"] = t.numpy()
    b = gnn.tensor([float(rank), 5.0], device=device)
    dist.broadcast(b, world - 1)
    result["broadcast"] = b.numpy()
    got = [gnn.zeros(2, device=device) for _ in range(world)]
    dist.all_gather(got, gnn.tensor([rank, 2.0 * rank], device=device))
    result["gathered"] = np.stack([g.numpy() for g in got])

    rng = np.random.default_rng(3)
    xs, ys = rng.normal(size=(3, 8, 4)), rng.normal(size=(3, 8, 1))
    gnn.manual_seed(20 + rank)  # different per rank: the wrapper broadcasts rank 0's
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 1)).to(device)
    ddp = DistributedDataParallel(model)
    opt = gnn.optim.SGD(model.parameters(), lr=0.1)
    per = 8 // world
    for step in range(3):
        x = gnn.tensor(xs[step, rank * per : (rank + 1) * per], device=device)
        y = gnn.tensor(ys[step, rank * per : (rank + 1) * per], device=device)
        opt.zero_grad()
        ((ddp(x) - y) ** 2).mean().backward()
        opt.step()
    result.update({f"param.{k}": p.numpy() for k, p in model.named_parameters()})
    np.savez(out / f"cuda_{world}_{rank}.npz", **result)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
