"""Fused attention (kernels/attention.cu, gnn/backend/fused/attention.py, gnn/ops/attention.py).

CPU: the reference against attention written out row by row with math.exp, the op's numerical
gradient check with q, k, v given separately and as one packed projection, and packed against
separate gradients. GPU (`gpu`-marked; the fake CuPy runs them, GNN_FAKE_CUDA=emulate runs the
kernel code): the kernels against the float64 reference on strided (packed) operands, causal or
not, one or two key tiles, any grid, determinism; the op's fused path against its unfused
composite (GNN_FUSED_ATTENTION=0), that switch, and the cases without a kernel (a float mask,
float64, MultiheadAttention asked for its weights) launching none of them; float16 kernels
(float32 math) against the reference within float16 rounding.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import gnn
from gnn import functional as F
from gnn.backend import cuda_available
from gnn.backend.fused import attention as fa
from gnn.testing import gradcheck

rng = np.random.default_rng(5)
needs_gpu = pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA device")
# (batch, heads, queries, keys, dim): one key tile; two (40 keys); more queries than keys
SHAPES = [(1, 2, 5, 5, 8), (1, 1, 3, 40, 16), (1, 1, 9, 4, 8)]
TOL = dict(rtol=2e-5, atol=2e-6)


def _by_rows(q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float, causal: bool) -> tuple:
    """Attention for one (L, D) head, a row at a time with math.exp: (out, logsumexp)."""
    out = np.zeros((q.shape[0], v.shape[1]))
    lse = np.zeros(q.shape[0])
    for i in range(q.shape[0]):
        keys = range(min(i + 1, k.shape[0]) if causal else k.shape[0])
        scores = [scale * float(np.dot(q[i], k[j])) for j in keys]
        top = max(scores)
        weights = [math.exp(s - top) for s in scores]
        total = sum(weights)
        lse[i] = top + math.log(total)
        out[i] = sum(w / total * v[j] for w, j in zip(weights, keys))
    return out, lse


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_reference_matches_attention_written_out(shape, causal):
    B, H, L, S, D = shape
    q, k, v = (rng.standard_normal((B, H, n, D)) for n in (L, S, S))
    saved = fa.reference(np, q, k, v, fa.Spec(0.4, causal))
    for b in range(B):
        for h in range(H):
            out, lse = _by_rows(q[b, h], k[b, h], v[b, h], 0.4, causal)
            np.testing.assert_allclose(saved.out[b, h], out, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(saved.lse[b, h], lse, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("causal", [False, True])
def test_reference_backward_matches_the_composite(causal):
    q, k, v = (gnn.tensor(rng.standard_normal((2, 6, 8)), requires_grad=True) for _ in range(3))
    g = rng.standard_normal((2, 6, 8))
    out = F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=0.3)
    out.backward(gnn.tensor(g))
    spec = fa.Spec(0.3, causal)
    arrays = [t.numpy() for t in (q, k, v)]
    saved = fa.reference(np, *arrays, spec)
    np.testing.assert_allclose(saved.out, out.numpy(), rtol=1e-12, atol=1e-12)
    grads = fa.reference_backward(np, *arrays, saved, g, spec)
    for got, t in zip(grads, (q, k, v)):
        np.testing.assert_allclose(got, t.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("causal", [False, True])
def test_attention_gradcheck_separate_and_packed(device, causal):
    # float64: the composite on both devices (on a GPU the packed projection's one-buffer path)
    q, k, v = (gnn.tensor(rng.standard_normal((2, 4, 3)), device=device) for _ in range(3))
    fn = lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=causal)  # noqa: E731
    assert gradcheck(fn, [q, k, v])
    packed = gnn.tensor(rng.standard_normal((3, 2, 4, 3)), device=device)
    fn = lambda t: F.scaled_dot_product_attention(t[0], t[1], t[2], is_causal=causal)  # noqa: E731
    assert gradcheck(fn, [packed])


def test_packed_projection_gets_the_gradients_of_separate_inputs(device):
    x = rng.standard_normal((2, 5, 3, 2, 4)).astype(np.float32)  # (B, L, 3, H, D) as a projection
    g = gnn.tensor(rng.standard_normal((2, 2, 5, 4)).astype(np.float32), device=device)
    packed = gnn.tensor(x, device=device, requires_grad=True)
    qkv = packed.permute(2, 0, 3, 1, 4)
    F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], is_causal=True).backward(g)
    parts = [np.ascontiguousarray(x[:, :, i].transpose(0, 2, 1, 3)) for i in range(3)]
    parts = [gnn.tensor(a, device=device, requires_grad=True) for a in parts]
    F.scaled_dot_product_attention(*parts, is_causal=True).backward(g)
    for i, t in enumerate(parts):
        got = packed.grad.numpy()[:, :, i].transpose(0, 2, 1, 3)
        np.testing.assert_allclose(got, t.grad.numpy(), rtol=1e-6, atol=1e-7)


# ---- the kernels ---------------------------------------------------------------------------------


def _cuda():
    from gnn.backend import get_backend

    return get_backend("cuda")


def _packed(be, B, H, L, D):
    """q, k, v as strided views of one (B, L, 3, H, D) projection, as GPT's attention splits it."""
    x = rng.standard_normal((B, L, 3, H, D)).astype(np.float32)
    qkv = be.asarray(x).transpose(2, 0, 3, 1, 4)
    return qkv[0], qkv[1], qkv[2]


def _operands(be, shape):
    B, H, L, S, D = shape
    if L == S:
        return _packed(be, B, H, L, D)
    # positive queries, and keys past the first tile of 32 positive and larger: every row's
    # running max moves in the second tile, so the online softmax must rescale what it summed
    q = np.abs(rng.standard_normal((B, H, L, D)))
    k, v = (rng.standard_normal((B, H, S, D)) for _ in range(2))
    k[:, :, 32:] = np.abs(k[:, :, 32:]) + 1.0
    return tuple(be.asarray(a.astype(np.float32)) for a in (q, k, v))


def _reference(be, q, k, v, g, spec):
    f64 = [be.to_numpy(a).astype(np.float64) for a in (q, k, v)]
    saved = fa.reference(np, *f64, spec)
    return saved, fa.reference_backward(np, *f64, saved, be.to_numpy(g).astype(np.float64), spec)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_code_path_attention_kernels_match_reference(shape, causal):
    _check_kernels(shape, causal, np.float32, TOL)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("causal", [False, True])
def test_code_path_attention_kernels_float16(causal):
    _check_kernels(SHAPES[0], causal, np.float16, dict(rtol=1e-2, atol=2e-3))


def _check_kernels(shape, causal, dtype, tol):
    be = _cuda()
    xp = be.xp
    q, k, v = (a.astype(dtype) for a in _operands(be, shape))
    spec = fa.Spec(1.0 / math.sqrt(shape[-1]), causal)
    saved = fa.cuda(be, q, k, v, spec)
    g = be.asarray(rng.standard_normal(q.shape).astype(dtype))
    into = None
    if shape[2] == shape[3]:  # the gradients into one packed buffer, as the op writes them
        buf = xp.full((shape[0], shape[2], 3, shape[1], shape[4]), np.nan, dtype)
        into = tuple(buf.transpose(2, 0, 3, 1, 4)[i] for i in range(3))
    grads = fa.cuda_backward(be, q, k, v, saved, g, spec, into)
    rsaved, rgrads = _reference(be, q, k, v, g, spec)
    np.testing.assert_allclose(be.to_numpy(saved.out), rsaved.out, **tol)
    np.testing.assert_allclose(be.to_numpy(saved.lse), rsaved.lse, **tol)
    assert saved.out.dtype == dtype and all(gr.dtype == dtype for gr in grads)
    for got, expect in zip(grads, rgrads):
        np.testing.assert_allclose(be.to_numpy(got), expect, **tol)
    if into is not None:
        assert not np.isnan(be.to_numpy(buf)).any()


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("threads,blocks", [(96, 1), (64, 3)])
def test_any_grid_attention_kernels(threads, blocks, monkeypatch):
    # grid-stride loops: one block of three warps walks all (batch, head, row) tiles, rewriting
    # its shared rows and tiles each time; three blocks of two warps share them out
    monkeypatch.setattr(fa, "_launch_shape", lambda rows, groups: (blocks, threads))
    be = _cuda()
    shape = (2, 1, 7, 7, 8)
    q, k, v = _operands(be, shape)
    spec = fa.Spec(0.35, True)
    saved = fa.cuda(be, q, k, v, spec)
    g = be.asarray(rng.standard_normal(q.shape).astype(np.float32))
    grads = fa.cuda_backward(be, q, k, v, saved, g, spec)
    rsaved, rgrads = _reference(be, q, k, v, g, spec)
    np.testing.assert_allclose(be.to_numpy(saved.out), rsaved.out, **TOL)
    for got, expect in zip(grads, rgrads):
        np.testing.assert_allclose(be.to_numpy(got), expect, **TOL)


def _block(device: str, seed: int = 3):
    """A GPT-style causal self-attention block's output and input gradient (packed projection)."""
    gnn.manual_seed(seed)
    lin = gnn.nn.Linear(8, 24).to(device)
    x = np.random.default_rng(seed).standard_normal((2, 6, 8)).astype(np.float32)
    x = gnn.tensor(x, device=device)
    x.requires_grad = True
    qkv = lin(x).reshape(2, 6, 3, 2, 4).permute(2, 0, 3, 1, 4)
    y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], is_causal=True)
    y = y.transpose(1, 2).reshape(2, 6, 8)
    (y * y).sum().backward()
    return y.numpy(), x.grad.numpy(), lin.weight.grad.numpy()


@pytest.mark.gpu
@needs_gpu
def test_cuda_matches_cpu_attention_fused_and_unfused(monkeypatch):
    fused = _block("cuda")
    monkeypatch.setenv("GNN_FUSED_ATTENTION", "0")
    unfused = _block("cuda")
    cpu = _block("cpu")
    for a, b, c in zip(fused, unfused, cpu):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-6)


@pytest.mark.gpu
@needs_gpu
def test_attention_kernels_are_deterministic():
    be = _cuda()
    q, k, v = _operands(be, (1, 2, 6, 6, 8))
    g = be.asarray(rng.standard_normal(q.shape).astype(np.float32))
    spec = fa.Spec(0.5, True)
    runs = []
    for _ in range(2):
        saved = fa.cuda(be, q, k, v, spec)
        runs.append(
            [be.to_numpy(a) for a in (saved.out, *fa.cuda_backward(be, q, k, v, saved, g, spec))]
        )
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


@pytest.mark.gpu
@needs_gpu
def test_switch_turns_the_attention_kernels_off(monkeypatch):
    import cupy

    if not getattr(cupy, "FAKE", False):
        pytest.skip("counts launches on the fake CuPy")
    names = {}
    for value in ("1", "0"):
        monkeypatch.setenv("GNN_FUSED_ATTENTION", value)
        with cupy.counting() as c:
            _block("cuda")
        names[value] = set(c.by_name())
    assert "attention_forward_f32" in names["1"] and "attention_backward_dq_f32" in names["1"]
    assert not any(n.startswith("attention_") for n in names["0"])


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("case", ["float_mask", "float64", "weights"])
def test_cases_without_a_kernel_take_the_composite(case):
    import cupy

    if not getattr(cupy, "FAKE", False):
        pytest.skip("counts launches on the fake CuPy")
    dtype = np.float64 if case == "float64" else np.float32
    q, k, v = (rng.standard_normal((1, 2, 5, 8)).astype(dtype) for _ in range(3))
    mask = rng.standard_normal((5, 5)).astype(np.float32) if case == "float_mask" else None
    results = {}
    gnn.manual_seed(0)
    mha = gnn.nn.MultiheadAttention(8, 2, batch_first=True)  # moved in place: the same weights
    for device in ("cpu", "cuda"):
        ts = [gnn.tensor(a, device=device) for a in (q, k, v)]
        m = None if mask is None else gnn.tensor(mask, device=device)
        with cupy.counting() as c:
            if case == "weights":  # need_weights=True: the weights come from the composite
                out, _ = mha.to(device)(ts[0][0], ts[0][0], ts[0][0], is_causal=True)
            else:
                out = F.scaled_dot_product_attention(*ts, attn_mask=m)
        results[device] = out.numpy().astype(np.float64)
        assert not any(name.startswith("attention_") for name in c.by_name())
    tol = dict(rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(results["cuda"], results["cpu"], **tol)
