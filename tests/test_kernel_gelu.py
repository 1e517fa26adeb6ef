"""GELU with its bias (kernels/gelu.cu, gnn/backend/fused/gelu.py, gnn/ops/bias_gelu.py).

CPU: the reference against GELU written out with math.erf / math.tanh, the op's numerical gradient
check, and the op against the unfused composite linear + gelu. GPU (`gpu`-marked; the fake CuPy
runs them, GNN_FAKE_CUDA=emulate runs the kernel code): the kernels against the float64
reference at small sizes on every code path, outputs poisoned with NaN, any grid, determinism.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

import gnn
from gnn import functional as F
from gnn.backend import NumpyBackend, cuda_available, kernels
from gnn.backend.fused import gelu as fused
from gnn.ops.bias_gelu import bias_gelu
from gnn.testing import gradcheck

ref = NumpyBackend()
rng = np.random.default_rng(11)
FORMS = ["none", "tanh"]
GPU_MARKS = [
    pytest.mark.gpu,
    pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA device"),
]
try:  # bfloat16 kernels (kernels/gelu_bf16.cu): reachable on the fake CuPy (ml_dtypes arrays)
    import ml_dtypes

    BF16 = [ml_dtypes.bfloat16]
except ImportError:
    BF16 = []
DTYPES = [np.float32, np.float16]
TOL = {np.float32: dict(rtol=1e-5, atol=2e-6), np.float16: dict(rtol=4e-3, atol=4e-3)}
TOL.update({d: dict(rtol=2e-2, atol=2e-2) for d in BF16})
EMULATED = os.environ.get("GNN_FAKE_CUDA") == "emulate"


def gelu_scalar(h: float, approximate: str) -> float:
    """GELU of one number, straight from its definition (an independent formula)."""
    if approximate == "tanh":
        return 0.5 * h * (1 + math.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h**3)))
    return 0.5 * h * (1 + math.erf(h / math.sqrt(2)))


# ---- CPU: the reference and the op ---------------------------------------------------------------


@pytest.mark.parametrize("approximate", FORMS)
def test_reference_matches_the_definition_and_central_differences(approximate):
    x = rng.standard_normal((5, 7)) * 3
    b = rng.standard_normal(7)
    spec = fused.GeluSpec(approximate)
    y, saved = fused.forward(ref, x, b, spec)
    expect = np.vectorize(lambda h: gelu_scalar(h, approximate))(x + b)
    np.testing.assert_allclose(y, expect, rtol=1e-12, atol=1e-13)
    gy = rng.standard_normal(x.shape)
    gx, gb = fused.backward(ref, gy, saved, spec, (True, True))
    eps = 1e-6
    plus = np.vectorize(lambda h: gelu_scalar(h, approximate))(x + b + eps)
    minus = np.vectorize(lambda h: gelu_scalar(h, approximate))(x + b - eps)
    numeric = gy * (plus - minus) / (2 * eps)
    np.testing.assert_allclose(gx, numeric, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(gb, numeric.sum(axis=0), rtol=1e-6, atol=1e-8)
    # a backward from a kernel-style saved (input and bias only) recomputes the same
    gx2, gb2 = fused.backward(ref, gy, fused.GeluSaved(x, b), spec, (True, True))
    np.testing.assert_allclose(gx2, gx, rtol=1e-15)
    np.testing.assert_allclose(gb2, gb, rtol=1e-14)


def test_spec_rejects_other_forms():
    with pytest.raises(ValueError, match="approximate"):
        fused.GeluSpec("sigmoid")
    with pytest.raises(ValueError, match="approximate"):
        bias_gelu(gnn.zeros(2, 3), gnn.zeros(3), approximate="fast")


@pytest.mark.parametrize("approximate", FORMS)
@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 5)])
def test_bias_gelu_gradcheck(approximate, shape):
    x = gnn.tensor(rng.standard_normal(shape) * 2, requires_grad=True)
    b = gnn.tensor(rng.standard_normal(shape[-1]), requires_grad=True)
    assert gradcheck(lambda x, b: bias_gelu(x, b, approximate), [x, b])
    assert gradcheck(lambda x: bias_gelu(x, None, approximate), [x])


@pytest.mark.parametrize("approximate", FORMS)
def test_bias_gelu_matches_linear_then_gelu(approximate):
    # the layer it replaces: gelu(linear(x, W, b)) against gelu(bias_gelu(x @ W.T, b))
    x0 = rng.standard_normal((2, 6, 8)).astype(np.float32)
    w0 = rng.standard_normal((12, 8)).astype(np.float32) / 3
    b0 = rng.standard_normal(12).astype(np.float32)
    gy = gnn.tensor(rng.standard_normal((2, 6, 12)).astype(np.float32))
    results = []
    for fused_path in (False, True):
        x, w, b = (gnn.tensor(a, requires_grad=True) for a in (x0, w0, b0))
        if fused_path:
            y = bias_gelu(F.linear(x, w), b, approximate)
        else:
            y = F.gelu(F.linear(x, w, b), approximate)
        (y * gy).sum().backward()
        results.append([y.numpy(), x.grad.numpy(), w.grad.numpy(), b.grad.numpy()])
    for got, expect in zip(*results):
        np.testing.assert_allclose(got, expect, rtol=2e-5, atol=2e-6)


def test_bias_gelu_other_dtype_bias_takes_the_composite():
    x = gnn.tensor(rng.standard_normal((3, 4)).astype(np.float32))
    b = gnn.tensor(rng.standard_normal(4))  # float64: add() promotes, as the composite does
    y = bias_gelu(x, b)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y.numpy(), F.gelu(x + b).numpy(), rtol=1e-12)


def test_backward_shape():
    # about 4 blocks per SM, row lanes of 8 rows or more, whole warps
    assert fused.backward_shape(8192, 3072, 132) == (6, 576, 1024)
    assert fused.backward_shape(1, 1, 132) == (1, 1, 32)
    assert fused.backward_shape(40, 45, 2) == (4, 8, 64)
    for n, d, sms in [(1, 7, 2), (300, 5, 2), (10**5, 768, 108), (7, 10**5, 132)]:
        chunks, blocks, threads = fused.backward_shape(n, d, sms)
        assert 1 <= chunks <= n and threads % 32 == 0 and 32 <= threads <= 1024
        assert blocks == -(-d // 32) * chunks


# ---- GPU: the kernels ---------------------------------------------------------------------------


@pytest.fixture
def be(nan_filled_cuda):
    """The CUDA backend, cupy.empty NaN-filled (tests/conftest.py)."""
    return nan_filled_cuda


def gpu(a):
    import cupy

    return cupy.asarray(a)


def host(a):
    import cupy

    return cupy.asnumpy(a).astype(np.float64)


def misaligned(a):
    """The same values one element into a buffer: every row off its 16-byte boundary."""
    flat = np.empty(a.size + 1, a.dtype)
    flat[1:] = a.reshape(-1)
    return gpu(flat)[1:].reshape(a.shape)


def check(be, shape, dtype, approximate, bias=True, need_bias=True, place=gpu, scale=2.0):
    """Forward and backward kernels against the float64 reference on the same rounded data."""
    x = (rng.standard_normal(shape) * scale).astype(dtype)
    b = rng.standard_normal(shape[-1]).astype(dtype) if bias else None
    gy = rng.standard_normal(shape).astype(dtype)
    spec = fused.GeluSpec(approximate)
    b64 = None if b is None else b.astype(np.float64)
    ry, rsaved = fused.forward(ref, x.astype(np.float64), b64, spec)
    rgx, rgb = fused.backward(ref, gy.astype(np.float64), rsaved, spec, (True, need_bias))
    import cupy

    with cupy.counting() as counts:
        y, saved = fused.forward(be, place(x), None if b is None else place(b), spec)
        gx, gb = fused.backward(be, place(gy), saved, spec, (True, need_bias))
    launches = counts.by_name()
    assert saved.h is None and launches.get(f"bias_gelu_forward_{suffix(dtype)}") == 1
    assert launches.get(f"bias_gelu_backward_{suffix(dtype)}") == 1
    assert launches.get(f"bias_gelu_backward_bias_{suffix(dtype)}", 0) == int(need_bias and bias)
    assert y.dtype == dtype and gx.dtype == dtype
    np.testing.assert_allclose(host(y), ry, **TOL[dtype])
    np.testing.assert_allclose(host(gx), rgx, **TOL[dtype])
    if rgb is None:
        assert gb is None
    else:
        # a column sum of n rounded terms: tolerance grows with the row count
        rows = x.size // shape[-1]
        tol = TOL[dtype]
        np.testing.assert_allclose(host(gb), rgb, rtol=tol["rtol"], atol=tol["atol"] * rows)


def suffix(dtype):
    return kernels.kernel_suffix(np.dtype(dtype))


CODE_PATHS = {
    "one element": dict(shape=(1, 1)),
    "scalar d 13": dict(shape=(3, 13)),
    "packs d 16": dict(shape=(5, 16)),  # whole 16-byte packs for float32 and half
    "packs and tail rows": dict(shape=(7, 24)),  # float32 packs; half: d % 8 == 0 too
    "row chunks": dict(shape=(40, 45)),  # several chunks and row lanes; two column tiles
    "3-d input": dict(shape=(2, 3, 8)),
    "misaligned": dict(shape=(4, 16), place=misaligned),
    "no bias": dict(shape=(6, 9), bias=False),
    "no bias gradient": dict(shape=(9, 33), need_bias=False),
}


@pytest.mark.parametrize("dtype", DTYPES + BF16)
@pytest.mark.parametrize("approximate", FORMS)
@pytest.mark.parametrize("case", list(CODE_PATHS))
def test_code_path_bias_gelu(be, case, approximate, dtype):
    check(be, dtype=dtype, approximate=approximate, **CODE_PATHS[case])


for _mark in GPU_MARKS:
    test_code_path_bias_gelu = _mark(test_code_path_bias_gelu)


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA device")
@pytest.mark.parametrize("dtype", DTYPES)
def test_bias_gelu_kernels_accept_any_grid(be, dtype):
    # grid-stride loops: 1 block of 64 threads (2 row lanes) does 3 column tiles x 2 row chunks
    # (its shared partials rewritten 6 times); 3 blocks of 64 threads do the forward and bias sum
    n, d, chunks = 11, 70, 2
    x = (rng.standard_normal((n, d)) * 2).astype(dtype)
    b = rng.standard_normal(d).astype(dtype)
    gy = rng.standard_normal((n, d)).astype(dtype)
    spec = fused.GeluSpec("tanh")
    ry, rsaved = fused.forward(ref, x.astype(np.float64), b.astype(np.float64), spec)
    rgx, rgb = fused.backward(ref, gy.astype(np.float64), rsaved, spec, (True, True))
    sfx, module = suffix(dtype), "gelu"
    y = gpu(np.full((n, d), np.nan, dtype))
    sizes = (np.int64(n), np.int64(d))
    args = (gpu(x), gpu(b), np.int32(1), np.int32(1), *sizes, y)
    be._kernel(module, f"bias_gelu_forward_{sfx}")((3,), (64,), args)
    gx = gpu(np.full((n, d), np.nan, dtype))
    partial = gpu(np.full((chunks, d), np.nan, np.float32))
    args = (gpu(x), gpu(b), gpu(gy), np.int32(1), np.int32(1), *sizes, np.int64(chunks))
    be._kernel(module, f"bias_gelu_backward_{sfx}")((1,), (64,), (*args, np.int32(1), gx, partial))
    gb = gpu(np.full(d, np.nan, dtype))
    args = (partial, np.int64(chunks), np.int64(d), gb)
    be._kernel(module, f"bias_gelu_backward_bias_{sfx}")((3,), (64,), args)
    for got, expect in ((y, ry), (gx, rgx)):
        np.testing.assert_allclose(host(got), expect, **TOL[dtype])
    np.testing.assert_allclose(host(gb), rgb, rtol=TOL[dtype]["rtol"], atol=TOL[dtype]["atol"] * n)


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA device")
def test_bias_gelu_bias_gradient_is_deterministic(be):
    x = gpu(rng.standard_normal((64, 40)).astype(np.float32))
    b = gpu(rng.standard_normal(40).astype(np.float32))
    gy = gpu(rng.standard_normal((64, 40)).astype(np.float32))
    spec = fused.GeluSpec("none")
    runs = []
    for _ in range(2):
        _, saved = fused.forward(be, x, b, spec)
        runs.append(host(fused.backward(be, gy, saved, spec, (False, True))[1]))
    assert np.array_equal(runs[0], runs[1])


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA device")
def test_bias_gelu_float64_takes_the_reference(be):
    import cupy

    x = rng.standard_normal((4, 6))
    b = rng.standard_normal(6)
    with cupy.counting() as counts:
        y, saved = fused.forward(be, gpu(x), gpu(b), fused.GeluSpec("tanh"))
    assert saved.h is not None and not any("bias_gelu" in k for k in counts.by_name())
    np.testing.assert_allclose(host(y), fused.forward(ref, x, b, fused.GeluSpec("tanh"))[0])


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA device")
def test_bias_gelu_op_on_the_gpu_matches_the_cpu():
    x0 = rng.standard_normal((3, 5, 16)).astype(np.float32)
    b0 = rng.standard_normal(16).astype(np.float32)
    out = []
    for device in ("cpu", "cuda"):
        x = gnn.tensor(x0, device=device, requires_grad=True)
        b = gnn.tensor(b0, device=device, requires_grad=True)
        y = bias_gelu(x, b, "tanh")
        y.sum().backward()
        out.append([y.numpy(), x.grad.numpy(), b.grad.numpy()])
    for got, expect in zip(out[1], out[0]):
        np.testing.assert_allclose(got, expect, rtol=1e-5, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA device")
def test_gpt_mlp_and_transformer_gelu_use_the_kernel_and_match_the_cpu():
    import cupy

    from gnn.models.gpt import MLP, GPTConfig

    x0 = rng.standard_normal((2, 3, 16)).astype(np.float32)
    layers = [
        MLP(GPTConfig(n_embd=16, dropout=0.0)),
        gnn.nn.TransformerEncoderLayer(16, 2, 24, dropout=0.0, activation="gelu"),
        gnn.nn.TransformerEncoderLayer(16, 2, 24, dropout=0.0, activation=gnn.nn.GELU("tanh")),
    ]
    for layer in layers:
        keys = set(layer.state_dict())
        out = []
        for device in ("cpu", "cuda"):
            layer.to(device)
            x = gnn.tensor(x0, device=device, requires_grad=True)
            with cupy.counting() as counts:
                y = layer(x)
                y.sum().backward()
            if device == "cuda":
                assert counts.by_name().get("bias_gelu_forward_f32") == 1
                assert counts.by_name().get("bias_gelu_backward_bias_f32") == 1
            grads = [p.grad.numpy() for p in layer.parameters()]
            out.append([y.numpy(), x.grad.numpy(), *grads])
            layer.zero_grad()
        assert set(layer.state_dict()) == keys
        for got, expect in zip(out[1], out[0]):
            np.testing.assert_allclose(got, expect, rtol=1e-4, atol=1e-5)
