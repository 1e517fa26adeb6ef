"""Shared fixtures: `device` runs a test on the CPU and, where CuPy sees a GPU, on CUDA too."""

from __future__ import annotations

import functools

import pytest

import gnn


@functools.cache
def _cuda_available() -> bool:
    return gnn.cuda_available()


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request: pytest.FixtureRequest) -> str:
    """The device name: "cpu", then "cuda" (marked `gpu`; skips itself without CuPy and a GPU)."""
    if request.param == "cuda" and not _cuda_available():
        pytest.skip("needs CuPy and a CUDA device")
    return request.param
