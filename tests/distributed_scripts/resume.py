"""A checkpoint written during 2-rank training resumes on 1 rank and on 2.

usage: resume.py train OUT_DIR    (2 ranks) 20 steps; rank 0 saves a checkpoint after step 10
                                  and the final parameters
       resume.py resume OUT_DIR   (1 or 2 ranks) load that checkpoint, run steps 10..19, save
                                  the final parameters

Each step's global batch of 16 is split evenly over the ranks, so every run follows the same
trajectory: the 2-rank resume must end bit-identical to the uninterrupted run, the 1-rank resume
equal to it up to rounding.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import gnn
import gnn.distributed as dist
from gnn import nn
from gnn.nn.parallel import DistributedDataParallel

STEPS, SAVE_AT, BATCH = 20, 10, 16


def main(mode: str, out: Path) -> None:
    gnn.set_default_dtype("float64")
    dist.init_process_group("mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    rng = np.random.default_rng(99)
    xs, ys = rng.normal(size=(STEPS, BATCH, 4)), rng.normal(size=(STEPS, BATCH, 2))
    gnn.manual_seed(3)
    model = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 2))
    opt = gnn.optim.Adam(model.parameters(), lr=1e-2)
    ckpt = out / "ckpt.safetensors"
    first = 0
    if mode == "resume":
        first = gnn.io.load_checkpoint(ckpt, model, opt)["epoch"]
    ddp = DistributedDataParallel(model)
    per = BATCH // world
    for step in range(first, STEPS):
        x = gnn.tensor(xs[step, rank * per : (rank + 1) * per])
        y = gnn.tensor(ys[step, rank * per : (rank + 1) * per])
        opt.zero_grad()
        ((ddp(x) - y) ** 2).mean().backward()
        opt.step()
        if mode == "train" and step + 1 == SAVE_AT and rank == 0:
            gnn.io.save_checkpoint(ckpt, model, opt, epoch=SAVE_AT)  # rank 0 alone writes
    if rank == 0:
        flat = np.concatenate([p.numpy().ravel() for p in model.parameters()])
        np.save(out / f"{mode}_{world}.npy", flat)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
