"""clip_grad_norm_ (gnn/nn/utils.py), its reference and its kernels
(gnn/backend/fused/clip_grad_norm.py, kernels/clip_grad_norm.cu).

CPU: the reference against the norm of all gradients joined into one vector (np.linalg.norm).
GPU (`gpu`-marked; the fake CuPy runs them, GNN_FAKE_CUDA=emulate runs the kernel code): the
kernels against the float64 reference on every code path, two launches per dtype and no sync,
the pointer table written once on the device (no host copy), any grid, NaN and inf gradients.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import gnn
from gnn.backend import cuda_available
from gnn.backend.fused import clip_grad_norm as fused
from gnn.nn.utils import clip_grad_norm_

rng = np.random.default_rng(5)
GPU_MARKS = [
    pytest.mark.gpu,
    pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA device"),
]
try:
    import ml_dtypes

    BF16 = [ml_dtypes.bfloat16]
except ImportError:
    BF16 = []
SIZES = [1, 3, 257, 1000, 0, 64]  # odd lengths, an empty gradient, more elements than one block


def params_with_grads(sizes, dtype, device="cpu", scale=1.0):
    """Parameters whose .grad holds fresh random values (the same values returned in float64)."""
    params, values = [], []
    for n in sizes:
        g = (rng.standard_normal(n) * scale).astype(dtype)
        p = gnn.nn.Parameter(gnn.zeros(n, dtype=dtype, device=device))
        p.grad = gnn.tensor(g, device=device)
        params.append(p)
        values.append(g.astype(np.float64))
    return params, values


@pytest.mark.parametrize("norm_type", [2.0, math.inf, 1.0, 0.5])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_reference_matches_the_norm_of_the_joined_vector(norm_type, max_norm):
    grads = [rng.standard_normal(n) for n in (4, 1, 9)]
    joined = np.concatenate(grads)
    expect = np.linalg.norm(joined, ord=norm_type) if norm_type >= 1 else None
    if expect is None:  # p < 1 is no norm for numpy.linalg: written out
        expect = (np.abs(joined) ** norm_type).sum() ** (1 / norm_type)
    before = [g.copy() for g in grads]
    total = fused.forward(
        gnn.backend.get_backend("cpu"), grads, fused.ClipSpec(max_norm, norm_type)
    )
    np.testing.assert_allclose(total, expect, rtol=1e-12)
    coef = min(1.0, max_norm / (expect + 1e-6))
    for g, b in zip(grads, before):
        np.testing.assert_allclose(g, b * coef, rtol=1e-12)


def test_error_if_nonfinite_raises_before_scaling():
    params, values = params_with_grads([3, 2], np.float32)
    params[1].grad.array[0] = np.inf
    with pytest.raises(RuntimeError, match="error_if_nonfinite"):
        clip_grad_norm_(params, 1.0, error_if_nonfinite=True)
    np.testing.assert_array_equal(params[0].grad.numpy(), values[0])


# ---- GPU: the kernels ---------------------------------------------------------------------------


def check(dtypes, norm_type, max_norm, scale=1.0, sizes=SIZES, poison=None):
    """clip_grad_norm_ on the GPU against the float64 reference on the same values."""
    import cupy

    params, values = [], []
    for dtype in dtypes:
        p, v = params_with_grads(sizes, dtype, "cuda", scale)
        params += p
        values += v
    if poison is not None:
        params[2].grad.array[1] = poison
        values[2][1] = poison
    expect_total = fused.reference(np, values, fused.ClipSpec(max_norm, norm_type))
    with cupy.counting() as counts:
        total = clip_grad_norm_(params, max_norm, norm_type)
    kinds = {cupy.dtype(d) for d in dtypes}
    assert counts.syncs == 0
    names = counts.by_name()
    steps = ("clip_norm_partial", "clip_norm_scale")
    assert sum(v for k, v in names.items() if k.startswith(steps)) == 2 * len(kinds)
    assert counts.h2d == 0  # the pointer tables are written by a kernel
    low = any(np.dtype(d).itemsize < 4 for d in dtypes)
    rtol = 1e-2 if low else 1e-5
    assert total.shape == ()
    np.testing.assert_allclose(total.numpy().astype(np.float64), expect_total, rtol=rtol)
    for p, v in zip(params, values):
        np.testing.assert_allclose(
            p.grad.numpy().astype(np.float64), v, rtol=rtol, atol=rtol * 1e-2
        )


CASES = {
    "clipped": dict(max_norm=0.5),
    "not clipped": dict(max_norm=1e4),
    "large values": dict(max_norm=1.0, scale=100.0),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float16, *BF16])
@pytest.mark.parametrize("norm_type", [2.0, math.inf])
@pytest.mark.parametrize("case", list(CASES))
def test_code_path_clip_grad_norm(case, norm_type, dtype):
    check([dtype], norm_type, **CASES[case])


@pytest.mark.parametrize("norm_type", [2.0, math.inf])
def test_code_path_clip_grad_norm_mixed_dtypes(norm_type):
    # one partial launch per dtype into one buffer; every scale launch combines all of it
    check([np.float32, np.float16], norm_type, max_norm=0.3, sizes=[5, 300, 2])


@pytest.mark.parametrize("poison", [np.nan, np.inf])
@pytest.mark.parametrize("norm_type", [2.0, math.inf])
def test_code_path_clip_grad_norm_nonfinite(poison, norm_type):
    # as PyTorch: a NaN makes the total and every gradient NaN; an inf total gives a zero
    # coefficient (finite gradients become 0, the inf one NaN)
    check([np.float32], norm_type, max_norm=1.0, poison=poison)


for _test in (
    test_code_path_clip_grad_norm,
    test_code_path_clip_grad_norm_mixed_dtypes,
    test_code_path_clip_grad_norm_nonfinite,
):
    for _mark in GPU_MARKS:
        _mark(_test)


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA device")
def test_clip_grad_norm_writes_the_pointer_table_once():
    import cupy

    # 20 tensors: two table launches (16 per launch), then none while the buffers stay
    params, values = params_with_grads([7, 40] * 10, np.float32, "cuda")
    expect = fused.reference(np, values, fused.ClipSpec(1.0))
    with cupy.counting() as counts:
        total = clip_grad_norm_(params, 1.0)
    assert counts.by_name().get("clip_norm_table") == 2 and counts.h2d == 0
    np.testing.assert_allclose(total.numpy(), expect, rtol=1e-5)
    for p, v in zip(params, values):
        np.testing.assert_allclose(p.grad.numpy(), v, rtol=1e-5, atol=1e-8)
    with cupy.counting() as counts:
        clip_grad_norm_(params, 1.0)
    assert counts.h2d == 0 and counts.syncs == 0 and counts.launches == 2


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA device")
def test_clip_grad_norm_kernels_accept_any_grid():
    # grid-stride loops over every tensor: 1 block of 32 threads for the partials (one partial),
    # 3 blocks of 64 for the scaling
    import cupy

    from gnn.backend import get_backend

    be = get_backend("cuda")
    grads = [cupy.asarray(rng.standard_normal(n).astype(np.float32)) for n in (70, 5, 200)]
    expect = [cupy.asnumpy(g).astype(np.float64) for g in grads]
    total_ref = fused.reference(np, expect, fused.ClipSpec(1.0))
    table = cupy.asarray(
        np.array([g.data.ptr for g in grads] + [g.size for g in grads], dtype=np.uint64)
    )
    partial = cupy.asarray(np.full(1, np.nan, np.float32))
    count = np.int32(len(grads))
    be._kernel("clip_grad_norm", "clip_norm_partial_f32")(
        (1,), (32,), (table, count, np.int32(0), partial)
    )
    total = cupy.asarray(np.full(1, np.nan, np.float32))
    args = (table, count, partial, np.int32(1), np.int32(0), np.float32(1.0), total)
    be._kernel("clip_grad_norm", "clip_norm_scale_f32")((3,), (64,), args)
    np.testing.assert_allclose(cupy.asnumpy(total)[0], total_ref, rtol=1e-5)
    for g, e in zip(grads, expect):
        np.testing.assert_allclose(cupy.asnumpy(g), e, rtol=1e-5, atol=1e-7)


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA device")
def test_clip_grad_norm_other_cases_take_the_reference():
    import cupy

    for dtype, norm_type in ((np.float64, 2.0), (np.float32, 1.0)):
        params, values = params_with_grads([6, 3], dtype, "cuda")
        expect = fused.reference(np, values, fused.ClipSpec(0.1, norm_type))
        with cupy.counting() as counts:
            total = clip_grad_norm_(params, 0.1, norm_type)
        assert not any(k.startswith("clip_norm") for k in counts.by_name())
        np.testing.assert_allclose(total.numpy(), expect, rtol=1e-6)
