"""GPU timing for the kernel benchmarks: CUDA-event medians, and a callable that waits for the GPU.

pytest-benchmark times the host; `synchronized(fn)` makes each round include the GPU work, and
`cuda_median_s(fn)` measures the device time alone (the numbers the ratios are computed from).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any


def cuda_median_s(fn: Callable[[], Any], repeat: int = 10, warmup: int = 2) -> float:
    """Median seconds of fn() on the current stream, by CUDA events, after `warmup` calls (which
    also compile the kernels)."""
    import cupy

    for _ in range(warmup):
        fn()
    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    times = []
    for _ in range(repeat):
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, end) / 1e3)
    return statistics.median(times)


def synchronized(fn: Callable[[], Any]) -> Callable[[], Any]:
    """fn followed by a device synchronisation, so pytest-benchmark times the GPU work."""
    import cupy

    def run() -> Any:
        out = fn()
        cupy.cuda.Device().synchronize()
        return out

    return run
