"""Shared fixtures: `device` runs a test on the CPU and, where CuPy sees a GPU, on CUDA too.

GNN_FAKE_CUDA=1 runs the gpu-marked tests on tests/fake_gpu, a NumPy stand-in for CuPy whose
arrays refuse to mix with host arrays and whose kernels are NumPy stand-ins behind a launch check
(see its docstring): `GNN_FAKE_CUDA=1 pytest -m gpu` checks the Python side of GPU support.
GNN_FAKE_CUDA=emulate does the same with gnn's CUDA kernels compiled by tests/cuda_cpu and run on
CPU threads instead of the stand-ins (ci/emulate.sh).
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import pytest

FAKE_CUDA = os.environ.get("GNN_FAKE_CUDA") in ("1", "emulate")
if FAKE_CUDA:
    _fake = str(Path(__file__).parent / "fake_gpu")
    sys.path.insert(0, _fake)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [_fake, os.environ.get("PYTHONPATH")]))

import gnn  # noqa: E402


@functools.cache
def _cuda_available() -> bool:
    return gnn.cuda_available()


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request: pytest.FixtureRequest) -> str:
    """The device name: "cpu", then "cuda" (marked `gpu`; skips itself without CuPy and a GPU)."""
    if request.param == "cuda" and not _cuda_available():
        pytest.skip("needs CuPy and a CUDA device")
    return request.param


@pytest.fixture
def nan_filled_cuda(monkeypatch: pytest.MonkeyPatch):  # -> CupyBackend
    """The CUDA backend, with cupy.empty's float arrays (bfloat16 too) NaN-filled, so that an
    element a kernel leaves unwritten shows in the result."""
    import cupy
    import numpy as np

    from gnn.backend import get_backend

    real_empty = cupy.empty

    def poisoned_empty(shape, dtype=float, order="C"):
        out = real_empty(shape, dtype=dtype, order=order)
        if np.dtype(dtype).kind == "f" or np.dtype(dtype).name == "bfloat16":
            out.fill(np.nan)
        return out

    monkeypatch.setattr(cupy, "empty", poisoned_empty)
    return get_backend("cuda")
