"""F.scaled_dot_product_attention and nn.MultiheadAttention: NumPy references, gradient checks,
mask semantics and errors. (PyTorch goldens are in test_golden_transformer.py.)
"""

import math

import numpy as np
import pytest

import gnn
import gnn.functional as F
from gnn import nn
from gnn.ops.attention import attention
from gnn.testing import gradcheck

rng = np.random.default_rng(0)


def ref_sdpa(q, k, v, keep=None, add=None, scale=None):
    """The textbook formula; keep: bool (True = attend), add: float added to the scores."""
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = q @ np.swapaxes(k, -1, -2) * scale
    if add is not None:
        s = s + add
    if keep is not None:
        s = np.where(keep, s, -np.inf)
    s = s - s.max(axis=-1, keepdims=True)
    p = np.exp(s)
    p = p / p.sum(axis=-1, keepdims=True)
    return p @ v


def qkv(*lead, L=4, S=5, E=6, Ev=3):
    return (
        rng.standard_normal((*lead, L, E)),
        rng.standard_normal((*lead, S, E)),
        rng.standard_normal((*lead, S, Ev)),
    )


def T(a, grad=False):
    return gnn.tensor(a, requires_grad=grad)


def test_no_mask_and_3d_inputs():
    q, k, v = qkv(3)
    out = F.scaled_dot_product_attention(T(q), T(k), T(v))
    np.testing.assert_allclose(out.numpy(), ref_sdpa(q, k, v), rtol=1e-12)


def test_bool_mask_broadcasts_over_batch_and_heads():
    q, k, v = qkv(2, 3)
    keep = rng.random((2, 1, 4, 5)) > 0.4
    keep[..., 2] = True
    out = F.scaled_dot_product_attention(T(q), T(k), T(v), attn_mask=T(keep))
    np.testing.assert_allclose(out.numpy(), ref_sdpa(q, k, v, keep=keep), rtol=1e-12)


def test_float_mask_is_added():
    q, k, v = qkv(2, 3)
    add = rng.standard_normal((3, 4, 5))
    out = F.scaled_dot_product_attention(T(q), T(k), T(v), attn_mask=T(add), scale=0.5)
    np.testing.assert_allclose(out.numpy(), ref_sdpa(q, k, v, add=add, scale=0.5), rtol=1e-12)


def test_causal_is_top_left_aligned():
    q, k, v = qkv(2, L=3, S=5)
    keep = np.tril(np.ones((3, 5), dtype=bool))
    out = F.scaled_dot_product_attention(T(q), T(k), T(v), is_causal=True)
    np.testing.assert_allclose(out.numpy(), ref_sdpa(q, k, v, keep=keep), rtol=1e-12)


def test_fully_masked_row_gives_zeros_not_nan():
    q, k, v = qkv(1)
    keep = np.ones((4, 5), dtype=bool)
    keep[1] = False
    qt, kt, vt = T(q, True), T(k, True), T(v, True)
    out = F.scaled_dot_product_attention(qt, kt, vt, attn_mask=T(keep))
    np.testing.assert_array_equal(out.numpy()[0, 1], 0.0)
    out.sum().backward()
    assert np.isfinite(qt.grad.numpy()).all() and np.isfinite(kt.grad.numpy()).all()
    np.testing.assert_array_equal(qt.grad.numpy()[0, 1], 0.0)


def test_float32_inputs_give_float32():
    q, k, v = (a.astype(np.float32) for a in qkv(2))
    out = F.scaled_dot_product_attention(T(q), T(k), T(v))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), ref_sdpa(q, k, v), atol=1e-5)


@pytest.mark.parametrize(
    "kind", ["none", "bool", "float_bcast", "causal", "kv_batch_bcast", "scale"]
)
def test_gradcheck(kind):
    q, k, v = qkv(2, 2, L=3, S=4, E=3, Ev=2)
    kw = {}
    if kind == "bool":
        keep = rng.random((3, 4)) > 0.3
        keep[:, 0] = True
        kw["attn_mask"] = T(keep)
    elif kind == "float_bcast":
        kw["attn_mask"] = T(rng.standard_normal((2, 1, 3, 4)))
    elif kind == "causal":
        kw["is_causal"] = True
    elif kind == "kv_batch_bcast":
        k, v = k[:1], v[:1]  # one set of keys for the whole batch: gradients are summed
    elif kind == "scale":
        kw["scale"] = 0.7
    inputs = [T(q, True), T(k, True), T(v, True)]
    assert gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, **kw), inputs)


def test_gradcheck_with_dropout():
    q, k, v = qkv(2, L=3, S=4, E=3, Ev=2)

    def fn(q, k, v):
        gnn.manual_seed(5)  # the same dropout mask on every evaluation
        return F.scaled_dot_product_attention(q, k, v, dropout_p=0.3)

    assert gradcheck(fn, [T(q, True), T(k, True), T(v, True)])


def test_dropout_zeroes_and_rescales_weights():
    q, k, v = qkv(4, 8, L=16, S=16)
    gnn.manual_seed(0)
    _, dropped = attention(T(q), T(k), T(v), None, 0.25, need_weights=True)
    _, full = attention(T(q), T(k), T(v), None, 0.0, need_weights=True)
    zero = dropped == 0
    assert 0.2 < zero.mean() < 0.3
    np.testing.assert_allclose(dropped[~zero], full[~zero] / 0.75, rtol=1e-12)


def test_errors():
    q, k, v = (T(a) for a in qkv(2))
    with pytest.raises(ValueError, match=r"attn_mask of shape \(3, 5\) does not broadcast"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=T(np.ones((3, 5), dtype=bool)))
    with pytest.raises(ValueError, match="either attn_mask or is_causal"):
        F.scaled_dot_product_attention(
            q, k, v, attn_mask=T(np.ones((4, 5), dtype=bool)), is_causal=True
        )
    with pytest.raises(ValueError, match="last \\(embedding\\) dim"):
        F.scaled_dot_product_attention(q, T(rng.standard_normal((2, 5, 7))), v)
    with pytest.raises(ValueError, match="sequence dim"):
        F.scaled_dot_product_attention(q, k, T(rng.standard_normal((2, 4, 3))))
    with pytest.raises(ValueError, match="dropout_p"):
        F.scaled_dot_product_attention(q, k, v, dropout_p=1.0)
    with pytest.raises(TypeError, match="bool or floating"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=T(np.ones((4, 5), dtype=np.int64)))


# ---- MultiheadAttention ----------------------------------------------------------------------


def ref_mha(m, q, k, v, keep=None):
    """MultiheadAttention written out in NumPy from the module's own parameters."""
    E, H = m.embed_dim, m.num_heads
    w = m.in_proj_weight.numpy()
    b = m.in_proj_bias.numpy()
    qp, kp, vp = (
        q @ w[:E].T + b[:E],
        k @ w[E : 2 * E].T + b[E : 2 * E],
        v @ w[2 * E :].T + b[2 * E :],
    )
    N, L, _ = qp.shape
    S = kp.shape[1]

    def heads(x, n):
        return x.reshape(N, n, H, E // H).transpose(0, 2, 1, 3)

    y = ref_sdpa(heads(qp, L), heads(kp, S), heads(vp, S), keep=keep)
    y = y.transpose(0, 2, 1, 3).reshape(N, L, E)
    return y @ m.out_proj.weight.numpy().T + m.out_proj.bias.numpy()


@pytest.fixture
def f64():
    with gnn.default_dtype("float64"):
        yield


def test_mha_parameters_match_pytorch_names():
    m = nn.MultiheadAttention(8, 2)
    assert {k: tuple(v.shape) for k, v in m.state_dict().items()} == {
        "in_proj_weight": (24, 8),
        "in_proj_bias": (24,),
        "out_proj.weight": (8, 8),
        "out_proj.bias": (8,),
    }
    np.testing.assert_array_equal(m.in_proj_bias.numpy(), 0)
    m = nn.MultiheadAttention(8, 2, kdim=3, vdim=5, bias=False)
    assert {k: tuple(v.shape) for k, v in m.state_dict().items()} == {
        "q_proj_weight": (8, 8),
        "k_proj_weight": (8, 3),
        "v_proj_weight": (8, 5),
        "out_proj.weight": (8, 8),
    }


def test_mha_matches_numpy_with_padding(f64):
    m = nn.MultiheadAttention(8, 2, batch_first=True)
    m.in_proj_bias.array[...] = rng.standard_normal(24)
    q, k = rng.standard_normal((3, 4, 8)), rng.standard_normal((3, 5, 8))
    pad = np.zeros((3, 5), dtype=bool)
    pad[0, 3:] = True
    out, w = m(T(q), T(k), T(k), key_padding_mask=T(pad))
    keep = ~pad[:, None, None, :]
    np.testing.assert_allclose(out.numpy(), ref_mha(m, q, k, k, keep), rtol=1e-10)
    np.testing.assert_allclose(w.numpy().sum(-1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(w.numpy()[0, :, 3:], 0.0)


def test_mha_layouts_agree(f64):
    m = nn.MultiheadAttention(8, 4)
    x = rng.standard_normal((5, 2, 8))  # (L, N, E)
    out_seq, _ = m(T(x), T(x), T(x))
    m.batch_first = True
    out_bf, _ = m(T(x.transpose(1, 0, 2)), T(x.transpose(1, 0, 2)), T(x.transpose(1, 0, 2)))
    np.testing.assert_allclose(out_bf.numpy(), out_seq.numpy().transpose(1, 0, 2), rtol=1e-12)
    single, w = m(T(x[:, 0]), T(x[:, 0]), T(x[:, 0]))  # unbatched (L, E)
    np.testing.assert_allclose(single.numpy(), out_bf.numpy()[0], rtol=1e-12)
    assert w.shape == (5, 5)


def test_mha_is_causal_alone_equals_explicit_mask(f64):
    m = nn.MultiheadAttention(8, 2, batch_first=True)
    x = T(rng.standard_normal((2, 4, 8)))
    mask = T(np.triu(np.ones((4, 4), dtype=bool), k=1))  # True = not allowed
    a, _ = m(x, x, x, is_causal=True, need_weights=False)
    b, _ = m(x, x, x, attn_mask=mask, need_weights=False)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12)


def test_mha_gradcheck(f64):
    m = nn.MultiheadAttention(4, 2, batch_first=True)
    q = T(rng.standard_normal((2, 3, 4)), True)
    kv = T(rng.standard_normal((2, 2, 4)), True)
    assert gradcheck(lambda q, kv: m(q, kv, kv, need_weights=False)[0], [q, kv])

    def with_weight(w):
        m._parameters["in_proj_weight"] = w  # the gradcheck's float64 copy takes its place
        return m(q, kv, kv, need_weights=False)[0]

    assert gradcheck(with_weight, [m.in_proj_weight])


def test_mha_dropout_only_in_training():
    m = nn.MultiheadAttention(8, 2, dropout=0.5, batch_first=True)
    x = T(rng.standard_normal((2, 6, 8)).astype(np.float32))
    m.eval()
    a, _ = m(x, x, x)
    b, _ = m(x, x, x)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    m.train()
    c, _ = m(x, x, x)
    assert not np.allclose(a.numpy(), c.numpy())


def test_mha_errors():
    with pytest.raises(ValueError, match="embed_dim 10 must be divisible by num_heads 4"):
        nn.MultiheadAttention(10, 4)
    with pytest.raises(ValueError, match=r"dropout probability p must be in \[0, 1\)"):
        nn.MultiheadAttention(8, 2, dropout=1.0)
    m = nn.MultiheadAttention(8, 2, batch_first=True)
    x = gnn.randn(2, 4, 8)
    with pytest.raises(ValueError, match=r"key_padding_mask must be \(N, S\) = \(2, 4\)"):
        m(x, x, x, key_padding_mask=T(np.zeros((2, 5), dtype=bool)))
    with pytest.raises(ValueError, match=r"2-D attn_mask must be \(L, S\) = \(4, 4\)"):
        m(x, x, x, attn_mask=T(np.zeros((3, 4), dtype=bool)))
    with pytest.raises(ValueError, match=r"3-D attn_mask must be \(N \* num_heads, L, S\)"):
        m(x, x, x, attn_mask=T(np.zeros((2, 4, 4), dtype=bool)))
    with pytest.raises(ValueError, match="expected query with 8 features"):
        m(gnn.randn(2, 4, 6), x, x)
