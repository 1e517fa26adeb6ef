"""Fused attention (kernels/attention.cu) against gnn's unfused composite, in the same run.

GPU only (skipped without CuPy and a CUDA device). GPT-2 small's causal self-attention on one
layer: batch 8, 12 heads, 1024 tokens, head dim 64, float32, q, k, v split from one packed
projection as gnn/models/gpt.py splits them; forward plus backward through the op
(F.scaled_dot_product_attention), so the packed gradient buffer is in both. Fused: 1 launch
forward, 2 backward. Unfused: the composite (GNN_FUSED_ATTENTION=0), about 11 + 13 launches and a
(1024 x 1024) scores matrix per head. The baseline entry has extra_info["role"] = "baseline";
benchmarks/conftest.py adds the ratios, and the fused entry also records its speedup measured with
CUDA events in alternation with the baseline.

Run: python -m pytest benchmarks/test_bench_attention.py --benchmark-only -q
"""

from __future__ import annotations

import numpy as np
import pytest
from gpu_timing import cuda_median_s, synchronized

import gnn
from gnn import functional as F
from gnn.backend import cuda_available

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA device"),
]

B, H, T, D = 8, 12, 1024, 64


def step(proj):
    """Causal self-attention from the packed projection, forward and backward."""
    qkv = proj.reshape(B, T, 3, H, D).permute(2, 0, 3, 1, 4)
    y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], is_causal=True)
    y.backward(gnn.ones(y.shape, device="cuda"))
    proj.grad = None


def operand():
    x = np.random.default_rng(0).standard_normal((B, T, 3 * H * D)).astype(np.float32)
    return gnn.tensor(x, device="cuda", requires_grad=True)


def with_kernels(on: bool, fn):
    """fn() with GNN_FUSED_ATTENTION set for the call only."""
    import os

    def run():
        old = os.environ.get("GNN_FUSED_ATTENTION")
        os.environ["GNN_FUSED_ATTENTION"] = "1" if on else "0"
        try:
            fn()
        finally:
            if old is None:
                del os.environ["GNN_FUSED_ATTENTION"]
            else:
                os.environ["GNN_FUSED_ATTENTION"] = old

    return run


@pytest.mark.benchmark(group="gpu-attention")
class TestGpuAttention:
    def test_fused_kernels(self, benchmark):
        proj = operand()
        fused_run = with_kernels(True, lambda: step(proj))
        fused = cuda_median_s(fused_run)
        unfused = cuda_median_s(with_kernels(False, lambda: step(proj)))
        benchmark.pedantic(synchronized(fused_run), rounds=10)
        # causal: half of the B * H * T * T scores, each in 7 products of 2 * D flops (2 forward;
        # 5 backward, the scores recomputed)
        flops = B * H * T * T / 2 * 7 * 2 * D
        benchmark.extra_info.update(
            median_ms=round(fused * 1e3, 3),
            TFLOPs=round(flops / fused / 1e12, 2),
            speedup=round(unfused / fused, 2),
        )

    def test_unfused_composite(self, benchmark):
        proj = operand()
        benchmark.pedantic(synchronized(with_kernels(False, lambda: step(proj))), rounds=10)
        benchmark.extra_info["role"] = "baseline"
