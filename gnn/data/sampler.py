"""DistributedSampler: each rank's share of a dataset's indices, the same order on every rank."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = ["DistributedSampler"]


class DistributedSampler:
    """Indices of `dataset` for one of `num_replicas` ranks: rank r takes every num_replicas-th
    index of one permutation, starting at r.

    The permutation comes from seed + epoch (call set_epoch(epoch) at the start of each epoch for
    a new order), so every rank computes the same one without communicating. Without drop_last
    the list is padded with its first indices to a multiple of num_replicas (every rank gets the
    same count; a few samples count twice per epoch); with drop_last the tail is dropped.

    With DataLoader(batch_size=b, sampler=...) on each rank, batch k of all ranks together is
    batch k (of size b * num_replicas) of one process iterating the padded permutation.
    num_replicas and rank default to the initialized process group's world size and rank.
    """

    def __init__(
        self,
        dataset: Any,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        from gnn import distributed as dist

        if num_replicas is None:
            num_replicas = dist.get_world_size()
        if rank is None:
            rank = dist.get_rank()
        if not isinstance(num_replicas, int) or num_replicas < 1:
            raise ValueError(
                f"DistributedSampler: num_replicas must be a positive integer, got {num_replicas!r}"
            )
        if not isinstance(rank, int) or not 0 <= rank < num_replicas:
            raise ValueError(
                f"DistributedSampler: rank must be in [0, {num_replicas}), got {rank!r}"
            )
        if not isinstance(seed, int):
            raise TypeError(f"DistributedSampler: seed must be an integer, got {seed!r}")
        n = len(dataset)
        if drop_last and n < num_replicas:
            raise ValueError(
                f"DistributedSampler: {n} samples cannot give each of {num_replicas} ranks one "
                "with drop_last=True"
            )
        self.dataset = dataset
        self.num_replicas, self.rank = num_replicas, rank
        self.shuffle, self.seed, self.drop_last = bool(shuffle), seed, bool(drop_last)
        self.epoch = 0
        self.num_samples = n // num_replicas if drop_last else math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Use the order of this epoch (seed + epoch) from the next iteration on."""
        if not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"DistributedSampler: epoch must be an integer >= 0, got {epoch!r}")
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        n = len(self.dataset)
        if self.shuffle:
            order = np.random.default_rng(self.seed + self.epoch).permutation(n)
        else:
            order = np.arange(n)
        if self.total_size > n:  # pad with the first indices (repeated if n is tiny)
            order = np.resize(order, self.total_size)
        else:
            order = order[: self.total_size]
        return iter(order[self.rank :: self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.num_samples
