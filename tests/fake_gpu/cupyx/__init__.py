"""The part of cupyx that gnn uses, for the fake CuPy in tests/fake_gpu/cupy (GNN_FAKE_CUDA=1)."""

from __future__ import annotations

from typing import Any

import cupy
import numpy as np

_ATOMIC_ADD_DTYPES = {np.dtype(t) for t in ("f2", "f4", "f8", "i4", "u4", "u8")}


def scatter_add(a: Any, slices: Any, value: Any) -> None:
    """a[slices] += value, adding up repeated indices."""
    if not isinstance(a, cupy.ndarray):
        raise TypeError(f"scatter_add: a must be a cupy.ndarray, not {type(a)}")
    if a.dtype not in _ATOMIC_ADD_DTYPES:
        raise TypeError(f"scatter_add does not support {a.dtype} (CUDA atomicAdd)")
    # Index and value arrays may be on the host: CuPy copies them over, as for setitem.
    cupy._count_host_index(slices)
    if cupy._active:
        # the index and values read, the target rows read and written
        rows = sum(x.nbytes for x in cupy._arrays(value))
        cupy._record(
            "launch", "scatter_add", sum(x.nbytes for x in cupy._arrays(slices)) + 3 * rows
        )
    target, index, values = cupy._unwrap(a), cupy._unwrap(slices, True), cupy._unwrap(value, True)

    def add() -> None:  # the ids wrapped around as they are when it runs (a replay too)
        np.add.at(target, cupy._wrapped_index(index, target.shape), values)

    cupy._graphs.run(add, None)
