"""DistributedDataParallel checks, run by tests/test_distributed.py on 1 rank and on 2.

usage: ddp_steps.py OUT_DIR

Every rank takes its equal share of each global batch (all of it on 1 rank) and writes
OUT_DIR/ddp_<world>_<rank>.npz with:
  grad0.<name>   gradients after the first backward (averaged over the ranks by the wrapper)
  accum.<name>   gradients of one global batch accumulated over two micro-batches, the first
                 under no_sync()
  heads.<name>   gradients of a model whose ranks use different heads (a missing .grad counts as
                 zeros on that rank; a head nobody uses keeps .grad None: absent here)
  final.<name>   parameters after 20 Adam steps
  sbn.<name>     a model with SyncBatchNorm (converted from BatchNorm1d): gradients of the
                 first step, then parameters and running statistics after 3 SGD steps
The model is initialised from a different seed on each rank: the wrapper must start every rank
from rank 0's weights.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import gnn
import gnn.distributed as dist
from gnn import nn
from gnn.nn.parallel import DistributedDataParallel

BATCH, STEPS = 16, 20


def make_model(seed: int) -> nn.Module:
    gnn.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 12), nn.ReLU(), nn.Linear(12, 3)
    )


def my_share(a: np.ndarray, rank: int, world: int) -> np.ndarray:
    per = len(a) // world
    return a[rank * per : (rank + 1) * per]


class TwoHeads(nn.Module):
    """A trunk and three heads: rank 0 uses head a, rank 1 head b, nobody head c."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Linear(4, 5)
        self.a, self.b, self.c = nn.Linear(5, 1), nn.Linear(5, 1), nn.Linear(5, 1)

    def forward(self, x: gnn.Tensor, head: str) -> gnn.Tensor:
        return getattr(self, head)(self.trunk(x).tanh())


def grads(model: nn.Module, prefix: str) -> dict[str, np.ndarray]:
    return {
        f"{prefix}.{k}": p.grad.numpy() for k, p in model.named_parameters() if p.grad is not None
    }


def main(out: Path) -> None:
    gnn.set_default_dtype("float64")
    dist.init_process_group("mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    rng = np.random.default_rng(1234)
    xs = rng.normal(size=(STEPS, BATCH, 6))
    ys = rng.integers(0, 3, size=(STEPS, BATCH))
    loss_fn = nn.CrossEntropyLoss()
    result: dict[str, np.ndarray] = {}

    model = make_model(seed=100 + rank)  # different on each rank until the wrapper broadcasts
    ddp = DistributedDataParallel(model)
    opt = gnn.optim.Adam(model.parameters(), lr=1e-2)

    # the gradient of the first global batch
    x, y = my_share(xs[0], rank, world), my_share(ys[0], rank, world)
    loss_fn(ddp(gnn.tensor(x)), gnn.tensor(y)).backward()
    result.update(grads(model, "grad0"))

    # the same batch in two micro-batches, gradients accumulated; only the second one syncs
    opt.zero_grad()
    half = len(x) // 2
    with ddp.no_sync():
        (loss_fn(ddp(gnn.tensor(x[:half])), gnn.tensor(y[:half])) * 0.5).backward()
    (loss_fn(ddp(gnn.tensor(x[half:])), gnn.tensor(y[half:])) * 0.5).backward()
    result.update(grads(model, "accum"))

    # 20 steps of Adam
    for step in range(STEPS):
        opt.zero_grad()
        x, y = my_share(xs[step], rank, world), my_share(ys[step], rank, world)
        loss_fn(ddp(gnn.tensor(x)), gnn.tensor(y)).backward()
        opt.step()
    result.update({f"final.{k}": p.numpy() for k, p in model.named_parameters()})

    # heads: on 2 ranks rank r uses head "ab"[r] on its half; on 1 rank the equivalent loss is
    # the mean of the two halves' losses, each through its head
    gnn.manual_seed(7)
    heads = TwoHeads()
    hddp = DistributedDataParallel(heads)
    xh = rng.normal(size=(8, 4))
    if world == 1:
        loss = (hddp(gnn.tensor(xh[:4]), "a").sum() + hddp(gnn.tensor(xh[4:]), "b").sum()) / 2
    else:
        loss = hddp(gnn.tensor(my_share(xh, rank, world)), "ab"[rank]).sum()
    loss.backward()
    result.update(grads(heads, "heads"))
    result["heads_c_is_none"] = np.array(heads.c.weight.grad is None)

    # SyncBatchNorm: statistics over the whole global batch (a plain BatchNorm in one process)
    gnn.manual_seed(11)
    bn_model = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3))
    nn.SyncBatchNorm.convert_sync_batchnorm(bn_model)
    assert isinstance(bn_model[1], nn.SyncBatchNorm)
    bddp = DistributedDataParallel(bn_model)
    bopt = gnn.optim.SGD(bn_model.parameters(), lr=0.1)
    for step in range(3):
        bopt.zero_grad()
        x, y = my_share(xs[step], rank, world), my_share(ys[step], rank, world)
        loss_fn(bddp(gnn.tensor(x)), gnn.tensor(y)).backward()
        if step == 0:
            result.update(grads(bn_model, "sbn.grad0"))
        bopt.step()
    result.update({f"sbn.{k}": t.numpy() for k, t in bn_model.state_dict().items()})

    np.savez(out / f"ddp_{world}_{rank}.npz", **result)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
