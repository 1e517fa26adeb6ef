"""The CNN's convolutions and max pooling on the GPU: kernels/conv.cu against gnn's CuPy path.

GPU only (skipped without CuPy and a CUDA device). The workload is the reference CNN's layers
(issue 14): Conv2d 1->16 3x3 pad 1, ReLU, MaxPool2d 2, Conv2d 16->32 3x3 pad 1, ReLU, MaxPool2d 2,
Flatten, Linear 32*7*7->10, on a (64, 1, 28, 28) float32 batch, forward + backward. Fused: Conv2d
and MaxPool2d through kernels/conv.cu (gnn/backend/fused/conv.py). Baseline: the same step with
the kernels turned off (`fused.conv.applies` answering False), i.e. the strided-view code of
gnn/ops/conv.py on CuPy arrays, in the same run (extra_info["role"] = "baseline"; the ratio is
added by benchmarks/conftest.py). The fused entry also records its speedup timed with CUDA events.

Run: python -m pytest benchmarks/test_bench_conv.py --benchmark-only -q
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from gpu_timing import cuda_median_s, synchronized

import gnn
from gnn import functional as F
from gnn.backend import cuda_available
from gnn.backend.fused import conv as fused_conv

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA device"),
]


@contextmanager
def kernels_off() -> Iterator[None]:
    """gnn's CuPy path for Conv2d and MaxPool2d (what ran before kernels/conv.cu)."""
    applies = fused_conv.applies
    fused_conv.applies = lambda be, dtype: False
    try:
        yield
    finally:
        fused_conv.applies = applies


def cnn_step() -> Callable[[], None]:
    """Forward + backward of the reference CNN on one batch (parameters made once)."""
    rng = np.random.default_rng(0)

    def param(*shape: int) -> gnn.Tensor:
        data = (rng.standard_normal(shape) * 0.1).astype(np.float32)
        return gnn.tensor(data, device="cuda", requires_grad=True)

    w1, b1, w2, b2 = param(16, 1, 3, 3), param(16), param(32, 16, 3, 3), param(32)
    wl, bl = param(10, 32 * 7 * 7), param(10)
    x = gnn.tensor(rng.standard_normal((64, 1, 28, 28)).astype(np.float32), device="cuda")
    labels = gnn.tensor(rng.integers(0, 10, 64), device="cuda")

    def step() -> None:
        h = F.max_pool2d(F.relu(F.conv2d(x, w1, b1, padding=1)), 2)
        h = F.max_pool2d(F.relu(F.conv2d(h, w2, b2, padding=1)), 2)
        loss = F.cross_entropy(F.linear(h.reshape(64, -1), wl, bl), labels)
        loss.backward()

    return step


@pytest.mark.benchmark(group="gpu-cnn-conv")
class TestGpuCnnConv:
    def test_fused_kernels(self, benchmark):
        step = cnn_step()
        fused = cuda_median_s(step, repeat=20, warmup=3)
        with kernels_off():
            unfused = cuda_median_s(step, repeat=20, warmup=3)
        benchmark.pedantic(synchronized(step), rounds=20)
        benchmark.extra_info.update(
            median_ms=round(fused * 1e3, 3), speedup=round(unfused / fused, 2)
        )

    def test_unfused_cupy_path(self, benchmark):
        step = cnn_step()
        with kernels_off():
            benchmark.pedantic(synchronized(step), rounds=20)
        benchmark.extra_info["role"] = "baseline"
