"""Transformer layers and stacks, positional encodings and Dropout: structure, masking behaviour,
gradient checks, errors, and a toy translation task that must really be learned.
"""

import argparse
import math

import numpy as np
import pytest

import gnn
from gnn import nn
from gnn.testing import gradcheck

rng = np.random.default_rng(0)


def T(a, grad=False):
    return gnn.tensor(a, requires_grad=grad)


def test_transformer_state_dict_keys_are_pytorchs():
    m = nn.Transformer(8, 2, num_encoder_layers=2, num_decoder_layers=1, dim_feedforward=16)
    keys = set(m.state_dict())
    for k in [
        "encoder.layers.0.self_attn.in_proj_weight",
        "encoder.layers.1.self_attn.out_proj.bias",
        "encoder.layers.1.linear1.weight",
        "encoder.layers.0.linear2.bias",
        "encoder.layers.0.norm2.weight",
        "encoder.norm.weight",
        "decoder.layers.0.multihead_attn.in_proj_bias",
        "decoder.layers.0.norm3.bias",
        "decoder.norm.bias",
    ]:
        assert k in keys, k
    # 2 encoder layers x 12 tensors + 2 (norm), 1 decoder layer x 18 + 2 (norm)
    assert len(keys) == 2 * 12 + 2 + 18 + 2


def test_encoder_copies_start_equal_but_are_independent():
    layer = nn.TransformerEncoderLayer(8, 2, 16)
    enc = nn.TransformerEncoder(layer, 3)
    a, b = enc.layers[0].linear1.weight, enc.layers[2].linear1.weight
    np.testing.assert_array_equal(a.numpy(), b.numpy())  # deep copies, as in PyTorch
    assert a is not b and a.array is not b.array
    a.array[...] = 0
    assert np.abs(b.numpy()).sum() > 0
    x = gnn.randn(4, 2, 8)
    assert enc(x).shape == (4, 2, 8)  # the copies share the backend: no device mix-up


def test_square_subsequent_mask():
    m = nn.Transformer.generate_square_subsequent_mask(3).numpy()
    expected = np.array([[0, -np.inf, -np.inf], [0, 0, -np.inf], [0, 0, 0]])
    np.testing.assert_array_equal(m, expected)


@pytest.mark.parametrize("norm_first", [False, True])
def test_causal_encoder_ignores_the_future(norm_first):
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, norm_first=norm_first,
                                       batch_first=True)  # fmt: skip
    x = rng.standard_normal((2, 5, 8)).astype(np.float32)
    mask = nn.Transformer.generate_square_subsequent_mask(5)
    a = layer(T(x), src_mask=mask).numpy()
    x2 = x.copy()
    x2[:, 3:] = rng.standard_normal((2, 2, 8))
    b = layer(T(x2), src_mask=mask).numpy()
    np.testing.assert_allclose(a[:, :3], b[:, :3], atol=1e-6)
    assert not np.allclose(a[:, 3:], b[:, 3:])


def test_decoder_ignores_padded_memory():
    layer = nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0)
    tgt = rng.standard_normal((3, 2, 8)).astype(np.float32)  # (T, N, E)
    mem = rng.standard_normal((4, 2, 8)).astype(np.float32)
    pad = np.array([[False, False, True, True], [False, False, False, False]])
    a = layer(T(tgt), T(mem), memory_key_padding_mask=T(pad)).numpy()
    mem[2:, 0] = 100.0  # change only padded memory rows of sample 0
    b = layer(T(tgt), T(mem), memory_key_padding_mask=T(pad)).numpy()
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_encoder_layer_gradcheck():
    with gnn.default_dtype("float64"):
        layer = nn.TransformerEncoderLayer(4, 2, 8, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)  # fmt: skip
        x = T(rng.standard_normal((2, 3, 4)), True)
        assert gradcheck(lambda x: layer(x, is_causal=True), [x], atol=1e-5, rtol=1e-3)


def test_dropout_active_only_in_training():
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.5)
    x = gnn.randn(4, 2, 8)
    layer.eval()
    np.testing.assert_array_equal(layer(x).numpy(), layer(x).numpy())
    layer.train()
    assert not np.allclose(layer(x).numpy(), layer(x).numpy())


def test_transformer_errors():
    m = nn.Transformer(8, 2, 1, 1, 16, batch_first=True)
    with pytest.raises(ValueError, match="batch size"):
        m(gnn.randn(2, 3, 8), gnn.randn(3, 3, 8))
    with pytest.raises(ValueError, match="d_model=8"):
        m(gnn.randn(2, 3, 8), gnn.randn(2, 3, 6))
    with pytest.raises(ValueError, match="activation must be"):
        nn.TransformerEncoderLayer(8, 2, activation="swish")
    with pytest.raises(ValueError, match="embed_dim 8 must be divisible by num_heads 3"):
        nn.TransformerEncoderLayer(8, 3)


@pytest.mark.parametrize("p", [1.0, -0.1, 1.5])
def test_dropout_p_outside_range_fails_at_construction(p):
    with pytest.raises(ValueError, match=r"Dropout: dropout probability p must be in \[0, 1\)"):
        nn.Dropout(p)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        nn.TransformerEncoderLayer(8, 2, dropout=p)


def test_dropout_module():
    d = nn.Dropout(0.25)
    x = gnn.ones(200, 100)
    y = d(x).numpy()
    assert 0.2 < (y == 0).mean() < 0.3
    np.testing.assert_allclose(y[y != 0], 1 / 0.75, rtol=1e-6)
    d.eval()
    np.testing.assert_array_equal(d(x).numpy(), 1.0)


def test_positional_encoding_formula():
    pe = nn.PositionalEncoding(6, dropout=0.0, max_len=10)
    x = np.zeros((4, 2, 6), dtype=np.float32)  # (T, N, E)
    out = pe(T(x)).numpy()
    for pos in range(4):
        for i in range(6):
            angle = pos / 10000 ** ((i - i % 2) / 6)
            want = math.sin(angle) if i % 2 == 0 else math.cos(angle)
            np.testing.assert_allclose(out[pos, :, i], want, atol=1e-6)
    pe_bf = nn.PositionalEncoding(6, dropout=0.0, max_len=10, batch_first=True)
    np.testing.assert_allclose(pe_bf(T(x.transpose(1, 0, 2))).numpy(), out.transpose(1, 0, 2))
    assert list(pe.state_dict()) == []  # recomputed, not saved
    with pytest.raises(ValueError, match="longer than max_len 10"):
        pe(gnn.zeros(11, 1, 6))


def test_positional_encoding_odd_width():
    out = nn.PositionalEncoding(5, dropout=0.0)(gnn.zeros(3, 1, 5)).numpy()
    np.testing.assert_allclose(out[2, 0, 4], math.sin(2 / 10000 ** (4 / 5)), atol=1e-6)


def test_learned_positional_embedding():
    pe = nn.LearnedPositionalEmbedding(8, 4, batch_first=True)
    x = T(rng.standard_normal((2, 3, 4)).astype(np.float32))
    out = pe(x)
    np.testing.assert_allclose(out.numpy(), x.numpy() + pe.weight.numpy()[None, :3], rtol=1e-6)
    out.sum().backward()
    g = pe.weight.grad.numpy()
    np.testing.assert_array_equal(g[:3], 2.0)
    np.testing.assert_array_equal(g[3:], 0.0)
    assert list(pe.state_dict()) == ["weight"]


@pytest.mark.slow
def test_translation_reaches_high_exact_match():
    from gnn.examples import translate

    args = argparse.Namespace(
        epochs=1, steps_per_epoch=800, batch_size=64, lr=2e-3, seed=0, device=None, save=None,
        quiet=True, max_number=9999, test_size=300, d_model=64, nhead=4, layers=2,
        dim_feedforward=128, norm_first=True,
    )  # fmt: skip
    m = translate.main(args, log=lambda *a: None)
    assert m["exact_match"] >= 0.95, m
