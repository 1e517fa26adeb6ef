"""Opt-in host allocator settings: keep glibc from handing freed array memory back every step.

A training step allocates and frees the same few megabytes of temporaries over and over. With
glibc's defaults, arrays over the mmap threshold get fresh pages each time, and the heap top is
trimmed back whenever more than twice that threshold is free, so every step pays page faults and
the kernel's zeroing of those pages again. Raising both thresholds keeps that memory in the
process for reuse. Measured on the LSTM training step of benchmarks/test_bench_layers.py on a
2 vCPU AMD EPYC VM (docs/performance.md): 4.7-5.2 ms per step with these settings against
8.2-9.3 ms without.

These are process-wide settings, so gnn never applies them by itself: `import gnn` and making a
backend leave the allocator alone. A program that owns its process (the `gnn` command, a
training script, the benchmark suite) calls `tune_malloc()` once at start. The cost: up to
TRIM_THRESHOLD bytes of freed memory stay mapped to the process, and arrays up to MMAP_THRESHOLD
come from the heap.
`tune_malloc()` does nothing where GNN_MALLOC_TUNING=0 is set (to measure without it), where the
user set glibc's own MALLOC_* variables or malloc tunables, and off glibc.
"""

from __future__ import annotations

import ctypes
import functools
import os

MMAP_THRESHOLD = 32 * 2**20  # glibc's own ceiling for its dynamic threshold (64-bit)
TRIM_THRESHOLD = 256 * 2**20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # from glibc's malloc.h


@functools.cache  # process-wide settings: made once, and the answer kept
def tune_malloc() -> bool:
    """Raise glibc's mmap and trim thresholds for this process (once); True when they were set."""
    if os.environ.get("GNN_MALLOC_TUNING", "1") == "0":
        return False
    user_set = [k for k in os.environ if k.startswith("MALLOC_") and k.endswith("_")]
    if user_set or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return False  # the user tuned the allocator: their settings stand
    try:  # libc by name, glibc's (find_library would start a subprocess)
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc: macOS, Windows, musl, the BSDs
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    settings = ((_M_MMAP_THRESHOLD, MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return all(mallopt(option, value) for option, value in settings)
