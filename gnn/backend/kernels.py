"""Finding, loading and sizing gnn's CUDA kernels: what the fused ops and ci/ scripts share.

Which dtypes have kernels and what their names end in, where the .cu files are and the text
NVRTC compiles from them, and the launch geometry (blocks, threads) of the kernel families. No
CuPy here: CupyBackend (gnn/backend/cuda.py) compiles and launches; this only names and sizes.
"""

from __future__ import annotations

import importlib.resources
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

# dtypes that have kernels, and the suffix of their kernel names; other dtypes (float64) take the
# reference implementation, which runs on CuPy arrays as it stands.
KERNEL_DTYPES = {np.dtype(np.float32): "f32", np.dtype(np.float16): "f16"}


def kernel_suffix(dtype: Any) -> str | None:
    """The kernel-name suffix for arrays of `dtype`: f32, f16, bf16, or None (the reference).

    bfloat16 (ml_dtypes) arrays exist only on the fake CuPy of the tests (CuPy has none); their
    kernels live in kernels/*_bf16.cu, modules of their own (see kernel_module).
    """
    return "bf16" if getattr(dtype, "name", None) == "bfloat16" else KERNEL_DTYPES.get(dtype)


def kernel_module(stem: str, suffix: str) -> str:
    """kernels/<stem>.cu, or kernels/<stem>_bf16.cu for the bfloat16 kernels."""
    return f"{stem}_bf16" if suffix == "bf16" else stem


ELEMENTWISE_THREADS = 256
BLOCKS_PER_SM = 8  # enough resident blocks of 256 threads to fill an SM (2048 threads)
MAX_THREADS = 1024


def elementwise_launch(n: int, itemsize: int, sm_count: int) -> tuple[int, int]:
    """(blocks, threads) for a grid-stride elementwise kernel over n elements in 16-byte packs."""
    packs = -(-n // (16 // itemsize))
    blocks = max(1, min(-(-packs // ELEMENTWISE_THREADS), sm_count * BLOCKS_PER_SM))
    return blocks, ELEMENTWISE_THREADS


def row_threads(c: int, itemsize: int) -> int:
    """Threads for a one-block-per-row kernel: a 16-byte pack each, whole warps, at most 1024."""
    return reduce_threads(-(-c // (16 // itemsize)))  # as many threads as 16-byte packs


def reduce_threads(n: int) -> int:
    """Threads for the one-block reduction over n rows: whole warps, at most 1024."""
    return min(MAX_THREADS, max(32, 32 * -(-n // 32)))


def row_blocks(n: int) -> int:
    """Blocks for a one-block-per-row kernel (the kernels stride over rows beyond the grid)."""
    return max(1, min(n, 2**31 - 1))


def kernel_dir() -> Path:
    """Where the .cu files are: kernels/ in a checkout, gnn/_kernels in an installed wheel.

    GNN_KERNEL_DIR overrides both (a folder of edited kernels: ci/emulate.sh --mutants uses it).
    """
    override = os.environ.get("GNN_KERNEL_DIR")
    if override:
        return Path(override)
    source = Path(__file__).resolve().parents[2] / "kernels"
    if (source / "sigmoid.cu").is_file():
        return source
    installed = Path(str(importlib.resources.files("gnn") / "_kernels"))
    if installed.is_dir():
        return installed
    raise FileNotFoundError(f"gnn's CUDA kernels were not found in {source} nor in {installed}")


_LOCAL_INCLUDE = re.compile(r'^#include "([\w.]+)"[ \t]*$', re.MULTILINE)


def kernel_source(name: str) -> str:
    """kernels/<name>.cu with its local `#include "x.cuh"` lines replaced by those files.

    Pasted rather than found through -I, so that the text NVRTC compiles, and CuPy's on-disk
    cache keys on, includes the shared header: an edit there cannot leave a stale binary.
    """
    folder = kernel_dir()

    def paste(match: re.Match) -> str:
        header = folder / match.group(1)
        if not header.is_file():
            raise FileNotFoundError(f"kernels/{name}.cu includes {match.group(1)}, not in {folder}")
        return f"// ---- {match.group(1)} ----\n{header.read_text()}// ---- end of {match.group(1)}"

    source = (folder / f"{name}.cu").read_text()
    for _ in range(4):  # a *_bf16.cu includes its base .cu, which includes common.cuh
        if not _LOCAL_INCLUDE.search(source):
            break
        source = _LOCAL_INCLUDE.sub(paste, source)
    return source
