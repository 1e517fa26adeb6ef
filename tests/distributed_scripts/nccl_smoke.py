"""The NCCL backend on real GPUs (run by the gpu-marked test; one rank per GPU).

usage: nccl_smoke.py OUT_FILE

Calls the NCCL communicator directly too, so its allReduce/bcast/allGather run even in a group
of one (where the high-level collectives return early).
"""

from __future__ import annotations

import json
import sys

import numpy as np

import gnn
import gnn.distributed as dist
from gnn import nn
from gnn.nn.parallel import DistributedDataParallel


def main(out: str) -> None:
    dist.init_process_group("nccl")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = dist.get_device()
    assert device.startswith("cuda:"), device
    checks: dict[str, bool] = {}

    t = gnn.tensor([1.0 + rank, 2.0], device=device)
    dist.all_reduce(t, "sum")
    expected = np.array([sum(1.0 + r for r in range(world)), 2.0 * world], dtype=np.float32)
    checks["all_reduce"] = bool(np.allclose(t.numpy(), expected))

    b = gnn.tensor([float(rank)] * 3, device=device)
    dist.broadcast(b, 0)
    checks["broadcast"] = bool((b.numpy() == 0).all())

    got = [gnn.zeros(2, device=device) for _ in range(world)]
    dist.all_gather(got, gnn.tensor([rank, rank + 0.5], device=device))
    checks["all_gather"] = all(float(g.numpy()[0]) == r for r, g in enumerate(got))

    comm = dist._group.nccl  # the communicator itself, exercised even in a group of one
    a = gnn.ones(4, device=device).array
    comm.all_reduce(a, "sum")
    comm.broadcast(a, 0)
    recv = gnn.zeros(4 * world, device=device).array
    comm.all_gather(a, recv)
    comm.synchronize()
    checks["communicator"] = bool(np.allclose(recv.get(), world))

    gnn.manual_seed(rank)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1)).to(device)
    ddp = DistributedDataParallel(model)
    ddp(gnn.randn(8, 3, device=device)).sum().backward()
    grads = [p.grad is not None for p in model.parameters()]
    checks["ddp_backward"] = all(grads)
    dist.barrier()
    dist.destroy_process_group()
    if rank == 0:
        with open(out, "w") as f:
            json.dump(checks, f)


if __name__ == "__main__":
    main(sys.argv[1])
