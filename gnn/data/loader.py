"""DataLoader: batches from a Dataset, shuffled by a seeded generator, collated to Tensors."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from gnn.backend import get_backend
from gnn.tensor import Tensor


def default_collate(batch: Any) -> Any:
    """Stack a list of samples into Tensors, keeping tuples, lists and dicts of fields.

    A batch that already is a tuple of Tensors/arrays (from a dataset's __getitems__) is turned
    into Tensors field by field without stacking.
    """
    if isinstance(batch, tuple):  # already batched by __getitems__
        return tuple(_to_tensor(b) for b in batch)
    if not isinstance(batch, list) or not batch:
        raise TypeError(
            f"default_collate: expected a non-empty list of samples, got {type(batch).__name__}"
        )
    first = batch[0]
    if isinstance(first, Tensor):
        be = first._be
        return Tensor._make(be.xp.stack([s.data for s in batch]), be, False)
    if isinstance(first, (np.ndarray, np.generic, int, float, bool)):
        return _to_tensor(np.stack([np.asarray(s) for s in batch]))
    if isinstance(first, Mapping):
        return {k: default_collate([s[k] for s in batch]) for k in first}
    if isinstance(first, (tuple, list)):
        if any(len(s) != len(first) for s in batch):
            raise ValueError("default_collate: samples in a batch have different numbers of fields")
        return (
            type(first)(default_collate(list(field)) for field in zip(*batch))
            if isinstance(first, tuple)
            else [default_collate(list(field)) for field in zip(*batch)]
        )
    return batch  # strings and other objects stay a list


def _to_tensor(a: Any) -> Any:
    if isinstance(a, Tensor):
        return a
    if isinstance(a, np.ndarray):
        if a.dtype == np.float64:
            # float64 sample arrays become the default float dtype, as model weights are
            from gnn.config import get_default_dtype

            a = a.astype(get_default_dtype())
        return Tensor._make(a, get_backend("cpu"), False)
    return a


class DataLoader:
    """Iterate a dataset in batches.

    batch_size: samples per batch (None: yield single samples uncollated); shuffle: a new order
    each epoch from `generator` (a numpy Generator) or, when None, gnn's seeded CPU generator;
    drop_last: skip the final short batch; collate_fn: turns a list of samples into a batch.
    sampler: an iterable of indices with a length (a DistributedSampler) that gives the order
    instead; it cannot be combined with shuffle=True (the sampler shuffles).
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int | None = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        collate_fn: Callable[[Any], Any] | None = None,
        generator: np.random.Generator | None = None,
        sampler: Any = None,
    ) -> None:
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size <= 0):
            raise ValueError(
                f"DataLoader: batch_size must be a positive integer or None, got {batch_size!r}"
            )
        if sampler is not None:
            if shuffle:
                raise ValueError(
                    "DataLoader: sampler and shuffle=True exclude each other (the sampler "
                    "decides the order; DistributedSampler has its own shuffle)"
                )
            if not hasattr(sampler, "__iter__") or not hasattr(sampler, "__len__"):
                raise TypeError(
                    "DataLoader: sampler must be an iterable of indices with a length, got "
                    f"{type(sampler).__name__}"
                )
        self.sampler = sampler
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.collate_fn = collate_fn or default_collate
        self.generator = generator

    def _order(self) -> list[int]:
        if self.sampler is not None:
            return list(self.sampler)
        n = len(self.dataset)
        if not self.shuffle:
            return list(range(n))
        rng = self.generator if self.generator is not None else get_backend("cpu").rng()
        return rng.permutation(n).tolist()

    def __iter__(self) -> Iterator[Any]:
        order = self._order()
        if self.batch_size is None:
            for i in order:
                yield self.dataset[i]
            return
        bs = self.batch_size
        batched = hasattr(self.dataset, "__getitems__") and self.collate_fn is default_collate
        for start in range(0, len(order), bs):
            idx = order[start : start + bs]
            if len(idx) < bs and self.drop_last:
                return
            if batched:
                yield self.collate_fn(self.dataset.__getitems__(idx))
            else:
                yield self.collate_fn([self.dataset[i] for i in idx])

    def __len__(self) -> int:
        n = len(self.sampler) if self.sampler is not None else len(self.dataset)
        if self.batch_size is None:
            return n
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)
