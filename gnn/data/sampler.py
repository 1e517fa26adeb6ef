"""Samplers: the order in which DataLoader visits a dataset's indices, with PyTorch's names.

Sampler, SequentialSampler, RandomSampler, SubsetRandomSampler, WeightedRandomSampler,
BatchSampler and DistributedSampler. Random samplers draw from `generator` when given (a
numpy.random.Generator, or an int seed for a private stream), else from gnn's seeded CPU
generator at the start of each iteration, so `gnn.manual_seed(s)` makes every order reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence, Sized
from typing import Any

import numpy as np

__all__ = [
    "BatchSampler", "DistributedSampler", "RandomSampler", "Sampler", "SequentialSampler",
    "SubsetRandomSampler", "WeightedRandomSampler",
]  # fmt: skip


def resolve_generator(generator: Any, owner: str) -> np.random.Generator | None:
    """A numpy Generator from `generator` (None, an int seed or a Generator); None means gnn's."""
    if generator is None or isinstance(generator, np.random.Generator):
        return generator
    if isinstance(generator, (int, np.integer)) and not isinstance(generator, bool):
        return np.random.default_rng(int(generator))
    raise TypeError(
        f"{owner}: generator must be None, an int seed or a numpy.random.Generator, got "
        f"{type(generator).__name__}"
    )


def current_rng(generator: np.random.Generator | None) -> np.random.Generator:
    """`generator`, or gnn's CPU generator as it is now (re-seeded by every gnn.manual_seed)."""
    if generator is not None:
        return generator
    from gnn.backend import get_backend

    return get_backend("cpu").rng()


def _check_positive_int(value: Any, name: str) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} should be a positive integer value, but got {name}={value!r}")


def _check_bool(value: Any, name: str, error: type[Exception]) -> None:
    if not isinstance(value, bool):
        raise error(f"{name} should be a boolean value, but got {name}={value!r}")


class Sampler:
    """Base class: an iterable of dataset indices (or of lists of them, for a batch sampler)."""

    def __init__(self, data_source: Any = None) -> None:
        # PyTorch's base class takes (and ignores) data_source; subclasses keep what they need
        pass

    def __iter__(self) -> Iterator[Any]:
        raise NotImplementedError(f"{type(self).__name__} has no __iter__")


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1, every epoch."""

    def __init__(self, data_source: Any) -> None:
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(Sampler):
    """Random indices of `data_source`: a permutation each epoch, or draws with replacement.

    num_samples (default len(data_source)) indices per epoch; without replacement and with
    num_samples > len(data_source), whole permutations follow each other (no index repeats
    within one), and the last is cut short. The order is drawn when iteration starts.
    """

    def __init__(
        self,
        data_source: Any,
        replacement: bool = False,
        num_samples: int | None = None,
        generator: Any = None,
    ) -> None:
        _check_bool(replacement, "replacement", TypeError)
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = resolve_generator(generator, "RandomSampler")
        _check_positive_int(self.num_samples, "num_samples")

    @property
    def num_samples(self) -> int:
        """Indices per epoch: the given num_samples, else the dataset's length."""
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self) -> Iterator[int]:
        n, k = len(self.data_source), self.num_samples
        if n == 0:
            raise ValueError("RandomSampler: the data source is empty")
        rng = current_rng(self.generator)
        if self.replacement:
            order = rng.integers(0, n, size=k)
        else:
            parts = [rng.permutation(n) for _ in range(k // n)]
            if k % n:
                parts.append(rng.permutation(n)[: k % n])
            order = np.concatenate(parts)
        # drawn now, not lazily, so the order does not depend on when batches are taken
        return iter(order.tolist())

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices in a new random order each epoch (without replacement)."""

    def __init__(self, indices: Sequence[int], generator: Any = None) -> None:
        self.indices = indices
        self.generator = resolve_generator(generator, "SubsetRandomSampler")

    def __iter__(self) -> Iterator[int]:
        perm = current_rng(self.generator).permutation(len(self.indices)).tolist()
        return iter([self.indices[i] for i in perm])

    def __len__(self) -> int:
        return len(self.indices)


class WeightedRandomSampler(Sampler):
    """num_samples indices in [0, len(weights)), index i with probability weights[i] / sum.

    With replacement=False an index is drawn at most once per epoch (each draw is proportional
    to the weights of the indices not drawn yet), so num_samples may not exceed the number of
    non-zero weights. Weights need not sum to 1 but must be finite, >= 0 and not all 0.
    """

    def __init__(
        self,
        weights: Any,
        num_samples: int,
        replacement: bool = True,
        generator: Any = None,
    ) -> None:
        _check_positive_int(num_samples, "num_samples")
        _check_bool(replacement, "replacement", ValueError)
        if hasattr(weights, "numpy"):
            weights = weights.numpy()
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim != 1:
            raise ValueError(
                f"weights should be a 1d sequence but given weights have shape {tuple(w.shape)}"
            )
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError("WeightedRandomSampler: weights must be finite and non-negative")
        if w.sum() <= 0:
            raise ValueError("WeightedRandomSampler: weights must not all be zero")
        nonzero = int(np.count_nonzero(w))
        if not replacement and num_samples > nonzero:
            raise ValueError(
                f"WeightedRandomSampler: cannot draw {num_samples} samples without replacement "
                f"from {nonzero} indices with non-zero weight"
            )
        self.weights = w
        self.num_samples = int(num_samples)
        self.replacement = replacement
        self.generator = resolve_generator(generator, "WeightedRandomSampler")

    def __iter__(self) -> Iterator[int]:
        rng = current_rng(self.generator)
        p = self.weights / self.weights.sum()
        order = rng.choice(len(p), size=self.num_samples, replace=self.replacement, p=p)
        return iter(order.tolist())

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler(Sampler):
    """Lists of batch_size indices from `sampler` (the last one shorter unless drop_last)."""

    def __init__(self, sampler: Iterable[int], batch_size: int, drop_last: bool) -> None:
        _check_positive_int(batch_size, "batch_size")
        _check_bool(drop_last, "drop_last", ValueError)
        self.sampler = sampler
        self.batch_size = int(batch_size)
        self.drop_last = drop_last

    def __iter__(self) -> Iterator[list[int]]:
        batch: list[int] = []
        for i in self.sampler:
            batch.append(i)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        sampler = self.sampler
        if not isinstance(sampler, Sized):  # any iterable batches; only a sized one counts
            raise TypeError(f"object of type {type(sampler).__name__!r} has no len()")
        n = len(sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)


class DistributedSampler(Sampler):
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
