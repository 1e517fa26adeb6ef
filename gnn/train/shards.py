"""fit on several processes (mpiexec): each rank's share of a batch, and sums over ranks."""

from __future__ import annotations

from typing import Any

import numpy as np

from gnn.nn.module import Module
from gnn.tensor import Tensor


class Shards:
    """This process's place among the ranks fit trains on, and the sums over them."""

    def __init__(self) -> None:
        from gnn import distributed as dist

        self.dist = dist
        self.rank, self.size = dist.get_rank(), dist.get_world_size()
        self.reducer: Any = None

    @classmethod
    def for_fit(cls) -> Shards | None:
        """None in one process; joins the process group when a launcher started several."""
        from gnn import distributed as dist

        if not dist.is_initialized() and dist.launcher_world_size() > 1:
            dist.init_process_group("mpi")
        return cls() if dist.get_world_size() > 1 else None

    def start(self, model: Module) -> None:
        """Every rank takes rank 0's weights; gradients are averaged from now on."""
        from gnn.nn.parallel import DistributedDataParallel

        self.reducer = DistributedDataParallel(model)

    def same_order(self, order: Any) -> Any:
        """Rank 0's shuffle, so the ranks split the same batches."""
        return self.dist.broadcast_array(order, 0)

    def shard(self, idx: Any) -> tuple[Any, int, float]:
        """(this rank's indices, its sample count, the weight of its loss) for one batch.

        Contiguous shares, sizes differing by at most one. The weight share * size / batch makes
        the mean over ranks of the weighted losses the mean over the whole batch, as in one
        process. A rank with no sample runs the first one with weight 0 (it must still join
        the gradient average).
        """
        m = len(idx)
        lo, hi = m * self.rank // self.size, m * (self.rank + 1) // self.size
        if hi == lo:
            return idx[:1], 0, 0.0
        return idx[lo:hi], hi - lo, (hi - lo) * self.size / m

    def combine(
        self, tally: Any, yb: Tensor, pred: Tensor, value: float, share: int
    ) -> tuple[float, int]:
        """Add the batch's metric sums over all ranks to the tally's; (its mean loss, its size)."""
        local: dict[str, list[float]] = {}
        if share:
            tally.metric_sums(yb, pred, local)
        names = [name for name, _ in tally.metrics]
        vec = [value * share if share else 0.0, float(share)]
        for name in names:
            vec += local.get(name, [0.0, 0])
        totals = self.dist.all_reduce_array(np.array(vec, dtype=np.float64), "sum")
        for i, name in enumerate(names):
            acc = tally.sums.setdefault(name, [0.0, 0])
            acc[0] += float(totals[2 + 2 * i])
            acc[1] += float(totals[3 + 2 * i])
        count = int(totals[1])
        return float(totals[0]) / max(count, 1), count
