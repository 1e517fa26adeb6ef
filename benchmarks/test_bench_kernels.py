"""Fused kernels against what runs without them, measured side by side (pytest-benchmark).

GPU (skipped without CuPy and a CUDA device): each kernel vs the unfused composition (the NumPy
reference running on CuPy arrays, which is what gnn runs when a kernel is missing), in GB/s of the
minimum traffic and as a fraction of the measured device-to-device copy bandwidth; softmax
cross-entropy also vs torch.nn.functional.cross_entropy when PyTorch with CUDA is importable.
CPU: the NumPy reference softmax cross-entropy vs a naive NumPy composition with a one-hot matrix.

Each group's baseline (the unfused composition) has extra_info["role"] = "baseline", so
benchmarks/conftest.py adds every other entry's ratio to it.

Run: python -m pytest benchmarks/test_bench_kernels.py --benchmark-only -q
"""

from __future__ import annotations

import statistics

import numpy as np
import pytest
from gpu_timing import cuda_median_s, synchronized

from gnn.backend import cuda_available
from gnn.backend.fused import layer_norm as fused_ln
from gnn.backend.fused import sigmoid as fused_sigmoid
from gnn.backend.fused import softmax_cross_entropy as fused_ce

HAS_GPU = cuda_available()
GPU_MARKS = [
    pytest.mark.gpu,
    pytest.mark.skipif(not HAS_GPU, reason="needs CuPy and a CUDA device"),
]

SIGMOID_ELEMENTS = 10**8  # 400 MB per float32 array: far beyond the 50 MB L2
CE_SHAPE = (8192, 50257)  # GPT-2 vocabulary, a batch of 8192 tokens: 1.65 GB of float32 logits
BYTES_PER_ELEMENT = 12  # both workloads: read two float32 streams, write one


# ---- helpers -----------------------------------------------------------------------------------


@pytest.fixture
def free_gpu_memory():
    """Hand the pooled blocks of a test's gigabyte arrays back, so the next test has room."""
    yield
    import cupy

    cupy.get_default_memory_pool().free_all_blocks()
    try:
        import torch

        torch.cuda.empty_cache()
    except Exception:
        pass


@pytest.fixture(scope="module")
def copy_gbps():
    """Measured device-to-device copy bandwidth (read + write bytes): these kernels' roofline."""
    import cupy

    src = cupy.ones(SIGMOID_ELEMENTS, dtype=cupy.float32)
    dst = cupy.empty_like(src)
    seconds = cuda_median_s(lambda: cupy.copyto(dst, src))
    return 2 * 4 * SIGMOID_ELEMENTS / seconds / 1e9


def report(benchmark, elements, seconds, copy, bytes_per_element=BYTES_PER_ELEMENT, **extra):
    gbps = bytes_per_element * elements / seconds / 1e9
    benchmark.extra_info.update(
        {
            "median_ms_cuda_events": round(seconds * 1e3, 4),
            "GB/s": round(gbps, 1),
            "copy_GB/s": round(copy, 1),
            "fraction_of_copy": round(gbps / copy, 3),
            **extra,
        }
    )


@pytest.fixture
def cuda_be():
    from gnn.backend import get_backend

    return get_backend("cuda")


# ---- GPU: sigmoid backward ---------------------------------------------------------------------


def sigmoid_operands():
    import cupy

    rng = cupy.random.default_rng(0)
    y = rng.random(SIGMOID_ELEMENTS, dtype=cupy.float32)
    gy = rng.standard_normal(SIGMOID_ELEMENTS, dtype=cupy.float32)
    return y, gy


@pytest.mark.benchmark(group="gpu-sigmoid-backward")
class TestGpuSigmoidBackward:
    pytestmark = [*GPU_MARKS, pytest.mark.usefixtures("free_gpu_memory")]

    def test_copy_bandwidth(self, benchmark, copy_gbps):
        import cupy

        src = cupy.ones(SIGMOID_ELEMENTS, dtype=cupy.float32)
        dst = cupy.empty_like(src)
        benchmark.pedantic(synchronized(lambda: cupy.copyto(dst, src)), rounds=10, warmup_rounds=2)
        benchmark.extra_info["copy_GB/s"] = round(copy_gbps, 1)

    def test_fused_kernel(self, benchmark, cuda_be, copy_gbps):
        y, gy = sigmoid_operands()
        fused = cuda_median_s(lambda: fused_sigmoid.backward(cuda_be, y, gy))
        unfused = cuda_median_s(lambda: fused_sigmoid.reference_backward(cuda_be.xp, y, gy))
        benchmark.pedantic(
            synchronized(lambda: fused_sigmoid.backward(cuda_be, y, gy)), rounds=10, warmup_rounds=2
        )
        # predicted: 12 bytes per element instead of 32 (three CuPy kernels), ~2.7x faster
        report(benchmark, y.size, fused, copy_gbps, speedup_vs_unfused=round(unfused / fused, 2))

    def test_unfused_composition(self, benchmark, cuda_be, copy_gbps):
        y, gy = sigmoid_operands()
        unfused = cuda_median_s(lambda: fused_sigmoid.reference_backward(cuda_be.xp, y, gy))
        benchmark.pedantic(
            synchronized(lambda: fused_sigmoid.reference_backward(cuda_be.xp, y, gy)),
            rounds=10,
            warmup_rounds=2,
        )
        report(benchmark, y.size, unfused, copy_gbps, role="baseline")


# ---- GPU: softmax cross-entropy forward + backward ---------------------------------------------


def ce_operands():
    import cupy

    rng = cupy.random.default_rng(1)
    n, c = CE_SHAPE
    logits = rng.standard_normal(CE_SHAPE, dtype=cupy.float32)
    target = rng.integers(0, c, n, dtype=cupy.int64)
    return logits, target


def ce_step(be, forward, backward, logits, target):
    """forward and backward are the fused op's (the kernels) or its references (on be.xp)."""
    arg = be if forward is fused_ce.forward else be.xp
    spec = fused_ce.Spec()

    def step():
        loss, saved = forward(arg, logits, target, spec)
        return backward(arg, logits, target, saved, cupy_one(), spec)

    return step


def cupy_one():
    import cupy

    return cupy.ones((), dtype=cupy.float32)


def fused_step(be, logits, target):
    return ce_step(be, fused_ce.forward, fused_ce.backward, logits, target)


def unfused_step(be, logits, target):
    return ce_step(be, fused_ce.reference, fused_ce.reference_backward, logits, target)


@pytest.mark.benchmark(group="gpu-softmax-cross-entropy")
class TestGpuSoftmaxCrossEntropy:
    pytestmark = [*GPU_MARKS, pytest.mark.usefixtures("free_gpu_memory")]

    def test_fused_kernels(self, benchmark, cuda_be, copy_gbps):
        logits, target = ce_operands()
        fused = cuda_median_s(fused_step(cuda_be, logits, target))
        unfused = cuda_median_s(unfused_step(cuda_be, logits, target), repeat=5)
        benchmark.pedantic(synchronized(fused_step(cuda_be, logits, target)), rounds=10)
        # forward reads the logits once, backward reads them again and writes the gradient
        report(
            benchmark, logits.size, fused, copy_gbps, speedup_vs_unfused=round(unfused / fused, 2)
        )

    def test_unfused_composition(self, benchmark, cuda_be, copy_gbps):
        logits, target = ce_operands()
        unfused = cuda_median_s(unfused_step(cuda_be, logits, target), repeat=5)
        benchmark.pedantic(synchronized(unfused_step(cuda_be, logits, target)), rounds=5)
        report(benchmark, logits.size, unfused, copy_gbps, role="baseline")

    def test_pytorch_cross_entropy(self, benchmark, copy_gbps):
        torch = pytest.importorskip("torch")
        if not torch.cuda.is_available():
            pytest.skip("PyTorch without CUDA")
        n, c = CE_SHAPE
        gen = torch.Generator(device="cuda").manual_seed(1)
        logits = torch.randn(CE_SHAPE, device="cuda", generator=gen).requires_grad_(True)
        target = torch.randint(0, c, (n,), device="cuda", generator=gen)

        def step():
            loss = torch.nn.functional.cross_entropy(logits, target)
            return torch.autograd.grad(loss, logits)[0]

        for _ in range(2):
            step()
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        times = []
        for _ in range(10):
            start.record()
            step()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)

        def synced():
            step()
            torch.cuda.synchronize()

        benchmark.pedantic(synced, rounds=10, warmup_rounds=1)
        report(benchmark, n * c, statistics.median(times), copy_gbps)


# ---- GPU: layer norm forward + backward ----------------------------------------------------------

LN_SHAPE = (16384, 768)  # GPT-2-small's width, 16 x 1024 tokens: 50 MB of float32 per array
# forward reads x and writes y; backward reads x and gy and writes gx, then reads x and gy again
# for the weight and bias gradients: 28 bytes per float32 element at the least, for this design
LN_BYTES_PER_ELEMENT = 28


def ln_operands():
    import cupy

    rng = cupy.random.default_rng(2)
    x = rng.standard_normal(LN_SHAPE, dtype=cupy.float32)
    gy = rng.standard_normal(LN_SHAPE, dtype=cupy.float32)
    w = rng.standard_normal(LN_SHAPE[1], dtype=cupy.float32)
    b = rng.standard_normal(LN_SHAPE[1], dtype=cupy.float32)
    return x, gy, w, b


def ln_step(be, fused, x, gy, w, b):
    """Forward and backward (every gradient): the kernels when `fused`, else the reference."""
    needs = fused_ln.Needs(True, True, True)

    def step():
        if not fused:
            _, saved = fused_ln.reference(be.xp, x, w, b, 1e-5)
            return fused_ln.reference_backward(be.xp, x, gy, saved, w, needs)
        _, saved = fused_ln.forward(be, x, w, b, 1e-5)
        return fused_ln.backward(be, x, gy, saved, w, needs)

    return step


@pytest.mark.benchmark(group="gpu-layer-norm")
class TestGpuLayerNorm:
    pytestmark = [*GPU_MARKS, pytest.mark.usefixtures("free_gpu_memory")]

    def test_fused_kernels(self, benchmark, cuda_be, copy_gbps):
        ops = ln_operands()
        fused = cuda_median_s(ln_step(cuda_be, True, *ops))
        unfused = cuda_median_s(ln_step(cuda_be, False, *ops), repeat=5)
        benchmark.pedantic(synchronized(ln_step(cuda_be, True, *ops)), rounds=10)
        report(
            benchmark,
            ops[0].size,
            fused,
            copy_gbps,
            LN_BYTES_PER_ELEMENT,
            speedup_vs_unfused=round(unfused / fused, 2),
        )

    def test_unfused_composition(self, benchmark, cuda_be, copy_gbps):
        ops = ln_operands()
        unfused = cuda_median_s(ln_step(cuda_be, False, *ops), repeat=5)
        benchmark.pedantic(synchronized(ln_step(cuda_be, False, *ops)), rounds=5)
        report(benchmark, ops[0].size, unfused, copy_gbps, LN_BYTES_PER_ELEMENT, role="baseline")

    def test_pytorch_layer_norm(self, benchmark, copy_gbps):
        torch = pytest.importorskip("torch")
        if not torch.cuda.is_available():
            pytest.skip("PyTorch without CUDA")
        gen = torch.Generator(device="cuda").manual_seed(2)
        x, w, b = (
            torch.randn(s, device="cuda", generator=gen).requires_grad_(True)
            for s in (LN_SHAPE, LN_SHAPE[1:], LN_SHAPE[1:])
        )
        gy = torch.randn(LN_SHAPE, device="cuda", generator=gen)

        def step():
            y = torch.nn.functional.layer_norm(x, LN_SHAPE[1:], w, b)
            return torch.autograd.grad(y, (x, w, b), gy)

        step()
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        times = []
        for _ in range(10):
            start.record()
            step()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)

        def synced():
            step()
            torch.cuda.synchronize()

        benchmark.pedantic(synced, rounds=10, warmup_rounds=1)
        report(benchmark, x.numel(), statistics.median(times), copy_gbps, LN_BYTES_PER_ELEMENT)


# ---- CPU: NumPy reference vs a naive composition -----------------------------------------------

CPU_SHAPE = (4096, 10000)  # issue 3: the NumPy path >= 1.5x faster than the naive one


def cpu_operands():
    rng = np.random.default_rng(2)
    logits = rng.standard_normal(CPU_SHAPE, dtype=np.float32)
    target = rng.integers(0, CPU_SHAPE[1], CPU_SHAPE[0])
    return logits, target


def cpu_reference_step(logits, target):
    spec = fused_ce.Spec()

    def step():
        loss, saved = fused_ce.reference(np, logits, target, spec)
        return loss, fused_ce.reference_backward(np, logits, target, saved, np.float32(1.0), spec)

    return step


def cpu_naive_step(logits, target):
    """The textbook composition: softmax, a one-hot N x C matrix, log, multiply, subtract."""
    n = logits.shape[0]

    def step():
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        onehot = np.zeros_like(logits)
        onehot[np.arange(n), target] = 1.0
        loss = -(onehot * np.log(p)).sum() / n
        return loss, (p - onehot) / n

    return step


@pytest.mark.benchmark(group="cpu-softmax-cross-entropy")
def test_cpu_softmax_cross_entropy_reference(benchmark):
    logits, target = cpu_operands()
    reference, naive = cpu_reference_step(logits, target), cpu_naive_step(logits, target)
    loss, grad = reference()
    naive_loss, naive_grad = naive()
    np.testing.assert_allclose(loss, naive_loss, rtol=1e-4)
    np.testing.assert_allclose(grad, naive_grad, atol=1e-7)
    benchmark.extra_info["target"] = round(1 / 1.5, 3)  # at least 1.5x faster than the naive one
    benchmark.pedantic(reference, rounds=7, warmup_rounds=1)


@pytest.mark.benchmark(group="cpu-softmax-cross-entropy")
def test_cpu_softmax_cross_entropy_naive(benchmark):
    benchmark.extra_info["role"] = "baseline"  # benchmarks/conftest.py adds ratios to it
    benchmark.pedantic(cpu_naive_step(*cpu_operands()), rounds=7, warmup_rounds=1)
