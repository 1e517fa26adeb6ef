"""Attention, MultiheadAttention, Transformer layers, LayerNorm and Embedding against PyTorch.

tests/golden/transformer.npz was written by tests/golden/make_transformer.py (PyTorch, float64,
dropout 0); gnn loads the same state dicts by PyTorch's key names and must match outputs and
gradients.
"""

from pathlib import Path

import numpy as np
import pytest

import gnn
import gnn.functional as F
from gnn import nn

GOLDEN = np.load(Path(__file__).parent / "golden" / "transformer.npz")
TOL = {"rtol": 1e-7, "atol": 1e-9}
# gnn's erf (so exact GELU) is accurate to ~1.2e-7, not to float64 precision.
GELU_TOL = {"rtol": 1e-5, "atol": 1e-6}


def case(name: str) -> dict:
    """{"in": {...}, "state": {...}, "grad": {...}, "grad_in": {...}, "out", "gy", ...}."""
    out: dict = {"in": {}, "state": {}, "grad": {}, "grad_in": {}}
    prefix = name + "/"
    for key in GOLDEN.files:
        if not key.startswith(prefix):
            continue
        parts = key[len(prefix) :].split("/", 1)
        if len(parts) == 2:
            out[parts[0]][parts[1]] = GOLDEN[key]
        else:
            out[parts[0]] = GOLDEN[key]
    assert "out" in out, f"no golden case {name}"
    return out


@pytest.fixture(autouse=True)
def float64():
    with gnn.default_dtype("float64"):
        yield


def leaf(a: np.ndarray) -> gnn.Tensor:
    return gnn.tensor(a, requires_grad=a.dtype.kind == "f")


def check(c: dict, out: gnn.Tensor, inputs: dict, module=None, tol: dict = TOL) -> None:
    np.testing.assert_allclose(out.numpy(), c["out"], **tol)
    out.backward(gnn.tensor(c["gy"]))
    for name, g in c["grad_in"].items():
        np.testing.assert_allclose(inputs[name].grad.numpy(), g, **tol, err_msg=f"grad of {name}")
    if module is not None:
        params = dict(module.named_parameters())
        assert sorted(params) == sorted(c["grad"])
        for name, g in c["grad"].items():
            np.testing.assert_allclose(params[name].grad.numpy(), g, **tol, err_msg=name)


def load(module, c: dict):
    module.load_state_dict(c["state"])  # strict: PyTorch's key names, all of them
    return module


@pytest.mark.parametrize(
    "name", ["none", "bool", "bool_per_batch", "float", "causal", "scale_bcast"]
)
def test_sdpa_matches_pytorch(name):
    c = case(f"sdpa_{name}")
    x = {k: leaf(c["in"][k]) for k in ("q", "k", "v")}
    kw = {}
    if "mask" in c["in"]:
        kw["attn_mask"] = gnn.tensor(c["in"]["mask"])
    if name == "causal":
        kw["is_causal"] = True
    if name == "scale_bcast":
        kw["scale"] = 0.3
    out = F.scaled_dot_product_attention(x["q"], x["k"], x["v"], **kw)
    check(c, out, x)


def test_mha_self_attention_with_masks_and_weights():
    c = case("mha_self")
    m = load(nn.MultiheadAttention(8, 2), c)
    x = leaf(c["in"]["x"])
    out, w = m(
        x, x, x,
        key_padding_mask=gnn.tensor(c["in"]["key_padding_mask"]),
        attn_mask=gnn.tensor(c["in"]["attn_mask"]),
    )  # fmt: skip
    np.testing.assert_allclose(w.numpy(), GOLDEN["mha_self/weights"], **TOL)
    check(c, out, {"x": x}, m)


def test_mha_cross_attention_kdim_vdim_float_mask():
    c = case("mha_cross")
    m = load(nn.MultiheadAttention(8, 2, kdim=6, vdim=7, batch_first=True), c)
    assert m.in_proj_weight is None and m.q_proj_weight.shape == (8, 8)
    x = {k: leaf(c["in"][k]) for k in ("q", "k", "v")}
    out, w = m(
        x["q"], x["k"], x["v"], attn_mask=gnn.tensor(c["in"]["attn_mask"]),
        average_attn_weights=False,
    )  # fmt: skip
    np.testing.assert_allclose(w.numpy(), GOLDEN["mha_cross/weights"], **TOL)
    check(c, out, x, m)


def test_mha_without_bias_separate_inputs():
    c = case("mha_nobias")
    m = load(nn.MultiheadAttention(8, 2, bias=False, batch_first=True), c)
    x = {k: leaf(c["in"][k]) for k in ("q", "k", "v")}
    out, w = m(x["q"], x["k"], x["v"], need_weights=False)
    assert w is None
    check(c, out, x, m)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("act", ["relu", "gelu"])
def test_encoder_layer(norm_first, act):
    c = case(f"enc_{'pre' if norm_first else 'post'}_{act}")
    m = nn.TransformerEncoderLayer(
        8, 2, 16, dropout=0.0, activation=act, norm_first=norm_first, batch_first=True
    )
    load(m, c)
    x = leaf(c["in"]["x"])
    out = m(
        x, src_mask=gnn.tensor(c["in"]["src_mask"]), src_key_padding_mask=gnn.tensor(c["in"]["kpm"])
    )
    check(c, out, {"x": x}, m, GELU_TOL if act == "gelu" else TOL)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer(norm_first):
    c = case(f"dec_{'pre' if norm_first else 'post'}")
    m = load(nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, norm_first=norm_first), c)
    x = {k: leaf(c["in"][k]) for k in ("tgt", "memory")}
    out = m(
        x["tgt"], x["memory"], tgt_mask=gnn.tensor(c["in"]["tgt_mask"]),
        memory_key_padding_mask=gnn.tensor(c["in"]["mkpm"]),
    )  # fmt: skip
    check(c, out, x, m)


def test_transformer():
    c = case("transformer")
    m = nn.Transformer(
        8, 2, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=16, dropout=0.0,
        batch_first=True,
    )  # fmt: skip
    load(m, c)
    x = {k: leaf(c["in"][k]) for k in ("src", "tgt")}
    mask = nn.Transformer.generate_square_subsequent_mask(4)
    np.testing.assert_array_equal(mask.numpy(), c["in"]["tgt_mask"])
    skpm = gnn.tensor(c["in"]["skpm"])
    out = m(
        x["src"], x["tgt"], tgt_mask=mask, src_key_padding_mask=skpm,
        memory_key_padding_mask=skpm,
    )  # fmt: skip
    check(c, out, x, m)


def test_layer_norm_modules():
    c = case("layernorm")
    m = load(nn.LayerNorm((3, 5)), c)
    x = leaf(c["in"]["x"])
    check(c, m(x), {"x": x}, m)
    c = case("layernorm_plain")
    m = nn.LayerNorm(6, elementwise_affine=False, eps=1e-3)
    assert list(m.parameters()) == []
    x = leaf(c["in"]["x"])
    check(c, m(x), {"x": x})


def test_embedding_module():
    c = case("embedding")
    m = load(nn.Embedding(7, 4, padding_idx=2), c)
    check(c, m(gnn.tensor(c["in"]["ids"])), {}, m)
