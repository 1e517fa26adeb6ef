"""Datasets: the map-style Dataset protocol, TensorDataset, Subset, ConcatDataset, random_split."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from gnn.backend import get_backend
from gnn.tensor import Tensor


class Dataset:
    """A map-style dataset: define __getitem__(index) -> sample and __len__()."""

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no __getitem__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} has no __len__")

    def __add__(self, other: Dataset) -> Dataset:
        return ConcatDataset([self, other])


class TensorDataset(Dataset):
    """Samples are the i-th rows of each tensor (or array); all must share the first dimension."""

    def __init__(self, *tensors: Any) -> None:
        if not tensors:
            raise ValueError("TensorDataset: needs at least one tensor")
        lengths = [len(t) for t in tensors]
        if len(set(lengths)) != 1:
            raise ValueError(
                f"TensorDataset: all tensors must have the same first dimension, "
                f"got lengths {lengths}"
            )
        self.tensors = tuple(tensors)

    def __getitem__(self, index: Any) -> tuple:
        return tuple(t[index] for t in self.tensors)

    def __getitems__(self, indices: Sequence[int]) -> tuple:
        """A whole batch in one indexing operation per tensor (what DataLoader uses)."""
        out: list[Tensor | np.ndarray] = []  # a column that is no Tensor gives a NumPy array
        for t in self.tensors:
            if isinstance(t, Tensor):
                # a raw take through the public backend: the loader's hot path (a Tensor index
                # costs a graph node and about 25 microseconds more per batch)
                be = t.backend
                idx = be.asarray(np.asarray(indices, dtype=np.int64))
                out.append(Tensor.wrap(be.xp.take(t.array, idx, axis=0), be))
            else:
                out.append(np.asarray(t)[np.asarray(indices, dtype=np.int64)])
        return tuple(out)

    def __len__(self) -> int:
        return len(self.tensors[0])


class Subset(Dataset):
    """The samples of `dataset` at `indices`."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = [int(i) for i in indices]

    def __getitem__(self, index: int) -> Any:
        return self.dataset[self.indices[index]]

    def __getitems__(self, indices: Sequence[int]) -> Any:
        picked = [self.indices[i] for i in indices]
        if hasattr(self.dataset, "__getitems__"):
            return self.dataset.__getitems__(picked)
        return [self.dataset[i] for i in picked]

    def __len__(self) -> int:
        return len(self.indices)


class ConcatDataset(Dataset):
    """Datasets one after another."""

    def __init__(self, datasets: Sequence[Dataset]) -> None:
        self.datasets = list(datasets)
        self.cumulative = np.cumsum([len(d) for d in self.datasets]).tolist()

    def __len__(self) -> int:
        return self.cumulative[-1] if self.cumulative else 0

    def __getitem__(self, index: int) -> Any:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"ConcatDataset: index {index} out of range for length {len(self)}")
        k = int(np.searchsorted(self.cumulative, index, side="right"))
        start = 0 if k == 0 else self.cumulative[k - 1]
        return self.datasets[k][index - start]


def random_split(
    dataset: Dataset, lengths: Sequence[float], generator: np.random.Generator | None = None
) -> list[Subset]:
    """Split into non-overlapping Subsets of the given lengths (or fractions that sum to 1).

    The permutation comes from `generator` when given, else from gnn's seeded CPU generator
    (so `gnn.manual_seed(s)` makes the split reproducible).
    """
    n = len(dataset)
    lengths = list(lengths)
    if lengths and all(isinstance(x, float) for x in lengths) and math.isclose(sum(lengths), 1.0):
        counts = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):  # hand the remainder out round-robin, as PyTorch does
            counts[i % len(counts)] += 1
    else:
        counts = [int(x) for x in lengths]
    if any(c < 0 for c in counts) or sum(counts) != n:
        raise ValueError(
            f"random_split: lengths {lengths} must be non-negative and sum to the dataset "
            f"length {n} "
            "(or be fractions that sum to 1)"
        )
    rng = generator if generator is not None else get_backend("cpu").rng()
    perm = rng.permutation(n).tolist()
    out, start = [], 0
    for c in counts:
        out.append(Subset(dataset, perm[start : start + c]))
        start += c
    return out
