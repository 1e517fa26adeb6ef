"""gnn.onnx.export: every layer family and shipped example model exports, passes the full ONNX
check, and runs in onnxruntime within 1e-5 of gnn at two batch sizes (and sequence lengths).

Random weights: equivalence does not need training. Skipped without `pip install 'gnn[onnx]'`.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest

import gnn
from gnn import functional as F
from gnn import nn

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from gnn.onnx import ExportError, export  # noqa: E402
from gnn.onnx.export import _flatten_outputs  # noqa: E402

TOL = 1e-5
RNG = np.random.default_rng(0)


def randn(*shape: int) -> gnn.Tensor:
    return gnn.tensor(RNG.standard_normal(shape).astype(np.float32))


def ids(high: int, *shape: int) -> gnn.Tensor:
    return gnn.tensor(RNG.integers(0, high, shape).astype(np.int64))


def roundtrip(model, args, variants, input_names=None, dynamic_axes=None) -> float:
    """Export, check fully, run every input set in onnxruntime; the largest |ort - gnn|."""
    args = args if isinstance(args, tuple) else (args,)
    buf = io.BytesIO()
    export(model, args, buf, input_names=input_names, dynamic_axes=dynamic_axes)
    proto = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(proto, full_check=True)
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    worst = 0.0
    seen_shapes = set()
    for a in [args, *variants]:
        a = a if isinstance(a, tuple) else (a,)
        with gnn.no_grad():
            want = _flatten_outputs(model(*a))
        feed = {i.name: t.numpy() for i, t in zip(sess.get_inputs(), a)}
        got = sess.run(None, feed)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.shape == w.shape, (g.shape, w.shape)
            worst = max(worst, float(np.abs(g - w.numpy()).max()) if g.size else 0.0)
        seen_shapes.add(tuple(t.shape for t in a))
    assert len(seen_shapes) == 1 + len(variants)  # the variants really are other sizes
    assert worst < TOL, worst
    return worst


BATCH = {"input": {0: "batch"}}


# ---- layer families ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "act",
    [
        nn.ReLU(), nn.LeakyReLU(0.2), nn.Sigmoid(), nn.Tanh(), nn.GELU(), nn.GELU("tanh"),
        nn.Softmax(-1), nn.LogSoftmax(1),
    ],
    ids=lambda m: repr(m),
)  # fmt: skip
def test_linear_and_every_activation(act) -> None:
    model = nn.Sequential(nn.Linear(5, 7), act, nn.Linear(7, 3, bias=False)).eval()
    roundtrip(model, randn(2, 5), [randn(6, 5)], dynamic_axes=BATCH)


def test_functional_math() -> None:
    class Math(nn.Module):
        def forward(self, x):
            a = F.silu(x) + F.softplus(x, beta=2.0) - x.exp().log1p() * x.abs().sqrt()
            b = (x.sin() * x.cos() + x.expm1()).clamp(-1.0, 2.0) / (x**2 + 1.0) ** 0.5
            c = x.mean(-1, keepdim=True) + x.sum(0) - x.max(-1, keepdim=True)[0] + x.min()
            d = x.masked_fill(x > 0.5, -1.0) + (x != x.abs()) + (x <= 0) * 2.0 - (x.round() == 1)
            d = d + x.sign() * x.floor() - x.ceil() + x.isnan() + x.isfinite()
            return a + b + c + d + x.logsumexp(-1, keepdim=True) + x.cumsum(1) + x.var(-1, True)

    roundtrip(Math().eval(), randn(3, 4), [randn(5, 4)], dynamic_axes=BATCH)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_fused_bias_gelu(approximate: str) -> None:
    """F.bias_gelu (the Transformer feed-forward's fused op on a GPU) exports as gelu(x + b)."""

    class BiasGelu(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 6)

        def forward(self, x):
            return F.bias_gelu(F.linear(x, self.fc.weight), self.fc.bias, approximate)

    roundtrip(BiasGelu().eval(), randn(3, 4), [randn(5, 4)], dynamic_axes=BATCH)


def test_conv_pool_batchnorm_dropout_flatten() -> None:
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2, dilation=1), nn.ReLU(),
        nn.AvgPool2d(2, padding=1, count_include_pad=False), nn.AvgPool2d(1, divisor_override=2),
        nn.Flatten(), nn.Dropout(0.5),
        nn.Linear(6 * 2 * 2, 5), nn.BatchNorm1d(5),
    )  # fmt: skip
    with gnn.no_grad():
        for bn in (model[1], model[11]):
            n = bn.running_mean.shape[0]
            bn.running_mean.copy_(randn(n))
            bn.running_var.copy_(gnn.tensor(RNG.uniform(0.5, 2.0, n).astype(np.float32)))
            bn.weight.copy_(randn(n))
    model.train()  # export switches to eval for the trace and gives the mode back
    roundtrip(model.eval(), randn(2, 2, 8, 8), [randn(5, 2, 8, 8)], dynamic_axes=BATCH)


def test_export_restores_training_mode() -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5))
    export(model, randn(2, 3), io.BytesIO())
    assert model.training and model[1].training


def test_conv_transpose_and_pool_variants() -> None:
    model = nn.Sequential(
        nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1),
        nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), nn.ReLU(),
        nn.ConvTranspose2d(4, 2, 2, stride=1, groups=2, dilation=2), nn.AvgPool2d(3, stride=1),
    )  # fmt: skip
    roundtrip(model.eval(), randn(2, 3, 5, 5), [randn(3, 3, 5, 5)], dynamic_axes=BATCH)


def test_layer_norm_and_embedding_with_sequence_axis() -> None:
    class Embed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(20, 8, padding_idx=0)
            self.norm = nn.LayerNorm(8)
            self.norm2 = nn.LayerNorm((3, 8), bias=False)

        def forward(self, x):
            h = self.norm(self.emb(x))  # (B, T, 8)
            return self.norm2(h.unsqueeze(2).expand(-1, -1, 3, -1))

    axes = {"input": {0: "batch", 1: "seq"}}
    roundtrip(Embed().eval(), ids(20, 2, 5), [ids(20, 4, 5), ids(20, 4, 9)], dynamic_axes=axes)


def test_shape_ops() -> None:
    class Shapes(nn.Module):
        def forward(self, x):  # x: (B, 6, 4)
            a, b, c = x.split(2, dim=1)
            y = F.cat([c, a, b], dim=1).permute(0, 2, 1)  # (B, 4, 6)
            y = y.reshape(y.shape[0], 2, 12)[:, ::-1, 1::2].flip(2)  # (B, 2, 6)
            z = gnn.stack(
                [x[:, 0], x[:, -1], x[..., 2:3].squeeze(-1).unsqueeze(-1).expand(-1, -1, 4)[:, 1]],
                1,
            )
            u = x.chunk(2, dim=2)[1].transpose(1, 2).flatten(1)  # (B, 12)
            w = x.index_select(1, gnn.tensor([5, 0, 3])).mean((1, 2))
            return y.reshape(-1, 12) + u, z[:, :, None, :], w, x.narrow(1, 2, 3)

    roundtrip(Shapes().eval(), randn(2, 6, 4), [randn(5, 6, 4)], dynamic_axes=BATCH)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("batch_first", [True, False])
def test_recurrent_stacked_bidirectional(kind: str, batch_first: bool) -> None:
    cls = getattr(nn, kind)
    extra = {"nonlinearity": "relu"} if kind == "RNN" and batch_first else {}
    model = cls(3, 5, num_layers=2, bidirectional=True, batch_first=batch_first, **extra).eval()
    if batch_first:
        axes, shapes = {0: "batch", 1: "seq"}, [(2, 4), (3, 4), (3, 7)]
    else:
        axes, shapes = {1: "batch", 0: "seq"}, [(4, 2), (4, 3), (7, 3)]
    xs = [randn(*s, 3) for s in shapes]
    roundtrip(model, xs[0], xs[1:], dynamic_axes={"input": axes})


def test_recurrent_with_initial_state_unidirectional() -> None:
    model = nn.LSTM(3, 4, batch_first=True).eval()

    class WithState(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = model

        def forward(self, x, h, c):
            out, (hn, cn) = self.lstm(x, (h, c))
            return out, hn, cn

    args = (randn(2, 5, 3), randn(1, 2, 4), randn(1, 2, 4))
    roundtrip(WithState().eval(), args, [])


def test_multihead_attention_with_masks() -> None:
    class Attend(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mha = nn.MultiheadAttention(8, 2, batch_first=True)
            self.cross = nn.MultiheadAttention(8, 4, kdim=6, vdim=5, batch_first=True)

        def forward(self, x, mem):
            t = x.shape[1]
            causal, _ = self.mha(x, x, x, need_weights=False, is_causal=True)
            bool_mask = gnn.tensor(np.triu(np.ones((t, 3), bool), 1))  # True = ignore
            float_mask = gnn.tensor(np.linspace(-1, 0, t * 3, dtype=np.float32).reshape(t, 3))
            a, _ = self.cross(causal, mem[..., :6], mem[..., 1:], need_weights=False,
                              attn_mask=bool_mask)  # fmt: skip
            b, _ = self.cross(causal, mem[..., :6], mem[..., 1:], need_weights=False,
                              attn_mask=float_mask)  # fmt: skip
            return a + b

    args = (randn(2, 4, 8), randn(2, 3, 6))
    axes = {"input": {0: "batch"}, "input_1": {0: "batch"}}
    roundtrip(Attend().eval(), args, [(randn(5, 4, 8), randn(5, 3, 6))], dynamic_axes=axes)


def test_key_padding_mask_as_a_graph_input() -> None:
    mha = nn.MultiheadAttention(8, 2, batch_first=True).eval()

    class Padded(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mha = mha

        def forward(self, x, pad):
            return self.mha(x, x, x, key_padding_mask=pad, need_weights=False)[0]

    def batch(n: int, t: int) -> tuple:
        lengths = RNG.integers(1, t + 1, n)
        return randn(n, t, 8), gnn.tensor(np.arange(t)[None, :] >= lengths[:, None])

    axes = {"x": {0: "batch", 1: "seq"}, "pad": {0: "batch", 1: "seq"}}
    roundtrip(Padded(), batch(3, 5), [batch(2, 5), batch(4, 8)], ["x", "pad"], axes)


def test_sdpa_with_masks_dynamic_lengths() -> None:
    class Sdpa(nn.Module):
        def forward(self, q, k, v):
            causal = F.scaled_dot_product_attention(q, q, q, is_causal=True)
            L, S = q.shape[-2], k.shape[-2]
            keep = gnn.ones(L, S, dtype=gnn.bool).tril()
            masked = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, scale=0.3)
            return causal + masked

    args = (randn(2, 3, 5, 4), randn(2, 3, 5, 4), randn(2, 3, 5, 4))
    axes = {n: {0: "batch", 2: "seq"} for n in ("q", "k", "v")}
    variants = [
        tuple(randn(4, 3, 5, 4) for _ in range(3)),
        tuple(randn(4, 3, 8, 4) for _ in range(3)),
    ]
    roundtrip(Sdpa().eval(), args, variants, input_names=["q", "k", "v"], dynamic_axes=axes)


def test_fully_masked_rows_give_zeros_as_in_gnn() -> None:
    class Masked(nn.Module):
        def forward(self, q):
            keep = gnn.tensor(np.array([[True, False, True], [False, False, False]]))
            return F.scaled_dot_product_attention(q[:, :2], q, q, attn_mask=keep)

    roundtrip(Masked().eval(), randn(2, 3, 4), [randn(5, 3, 4)], dynamic_axes=BATCH)


@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_encoder_decoder(norm_first: bool) -> None:
    model = nn.Transformer(
        8, 2, num_encoder_layers=2, num_decoder_layers=1, dim_feedforward=16, dropout=0.1,
        batch_first=True, norm_first=norm_first,
    ).eval()  # fmt: skip

    class Seq2Seq(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.t = model

        def forward(self, src, tgt):
            mask = nn.Transformer.generate_square_subsequent_mask(tgt.shape[1])
            return self.t(src, tgt, tgt_mask=mask, tgt_is_causal=True)

    axes = {"src": {0: "batch", 1: "src_len"}, "tgt": {0: "batch", 1: "tgt_len"}}
    variants = [(randn(3, 5, 8), randn(3, 4, 8)), (randn(3, 7, 8), randn(3, 6, 8))]
    roundtrip(Seq2Seq().eval(), (randn(2, 5, 8), randn(2, 4, 8)), variants,
              input_names=["src", "tgt"], dynamic_axes=axes)  # fmt: skip


def test_positional_encodings_follow_the_sequence_axis() -> None:
    class Pos(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fixed = nn.PositionalEncoding(8, dropout=0.0, max_len=32, batch_first=True)
            self.learned = nn.LearnedPositionalEmbedding(32, 8, batch_first=True)

        def forward(self, x):
            return self.learned(self.fixed(x * math.sqrt(8)))

    axes = {"input": {0: "batch", 1: "seq"}}
    roundtrip(Pos().eval(), randn(2, 5, 8), [randn(3, 5, 8), randn(3, 9, 8)], dynamic_axes=axes)


# ---- the shipped example models ------------------------------------------------------------------


def _example(name: str, config: dict | None):
    import importlib

    module = importlib.import_module(f"gnn.examples.{name}")
    model = module.build_model(config)
    module.compile_model(model, 1e-3)  # builds lazy layers
    return model


@pytest.mark.parametrize(
    "name,config,shape",
    [
        ("xor", None, (2,)),
        ("titanic", {"hidden": [8, 6], "features": 8, "dropout": 0.5}, (8,)),
        ("digits", {"hidden": [16, 8], "features": 64}, (64,)),
        ("digits_cnn", {"channels": [4, 6], "hidden": 12, "dropout": 0.25}, (1, 8, 8)),
        ("autoencoder", {"sizes": [16, 4], "features": 64}, (64,)),
    ],
)
def test_example_models(name: str, config: dict, shape: tuple) -> None:
    model = _example(name, config).eval()
    roundtrip(model, randn(2, *shape), [randn(7, *shape)], dynamic_axes=BATCH)


def test_text_example_gpt_batch_and_sequence() -> None:
    from gnn.models.gpt import GPT, GPTConfig

    model = GPT(GPTConfig(vocab_size=13, block_size=12, n_layer=2, n_head=2, n_embd=8)).eval()
    axes = {"idx": {0: "batch", 1: "seq"}, "output": {0: "batch", 1: "seq"}}
    variants = [ids(13, 3, 5), ids(13, 3, 12), ids(13, 1, 1)]
    roundtrip(model, ids(13, 2, 5), variants, input_names=["idx"], dynamic_axes=axes)


def test_translate_example_with_padding_masks() -> None:
    from gnn.examples.translate import NumberTranslator

    model = NumberTranslator(8, 2, 1, 16).eval()

    def batch(n: int, s: int, t: int) -> tuple:
        src, tgt = ids(20, n, s) + 1, ids(10, n, t) + 1
        lengths = RNG.integers(1, s + 1, n)  # PAD (0) after each source's words
        src = np.where(np.arange(s) < lengths[:, None], src.numpy(), 0)
        return gnn.tensor(src), tgt

    axes = {"src": {0: "batch", 1: "src_len"}, "tgt": {0: "batch", 1: "tgt_len"}}
    variants = [batch(4, 6, 3), batch(3, 9, 7)]
    roundtrip(model, batch(2, 6, 3), variants, input_names=["src", "tgt"], dynamic_axes=axes)


def test_constants_computed_from_input_values_are_refused() -> None:
    class Frozen(nn.Module):
        def forward(self, x):  # the mask comes from NumPy, not from gnn ops: ONNX would freeze it
            return x * gnn.tensor((x.numpy() > 0).astype(np.float32))

    with pytest.raises(ExportError, match=r"Mul in layer <root> \(Frozen\).*follow the inputs"):
        export(Frozen(), randn(3, 4), io.BytesIO())


# ---- errors and the command line -----------------------------------------------------------------


def test_missing_converter_names_the_op_and_the_layer() -> None:
    class Head(nn.Module):
        def forward(self, x):
            return F.binary_cross_entropy_with_logits(x, gnn.zeros(*x.shape))

    model = nn.Sequential(nn.Linear(3, 2), Head())
    with pytest.raises(ExportError, match=r"BCEWithLogits.*layer 1 \(Head\)"):
        export(model, randn(2, 3), io.BytesIO())


def test_ops_the_outputs_do_not_need_are_left_out() -> None:
    class WithLoss(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(3, 2)

        def forward(self, x):
            y = self.lin(x)
            self.loss = F.binary_cross_entropy_with_logits(y, gnn.zeros(*y.shape))  # no converter
            self.hits = y.argmax(-1) == 0  # argmax is not traced: a frozen value, unused
            return y

    roundtrip(WithLoss().eval(), randn(2, 3), [randn(4, 3)], dynamic_axes=BATCH)


def test_import_gnn_does_not_load_onnx() -> None:
    import subprocess
    import sys

    code = (
        "import sys, gnn; assert 'gnn.onnx' not in sys.modules; gnn.onnx.export; "
        "print('onnx' in sys.modules, 'onnxruntime' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_bad_arguments() -> None:
    model = nn.Linear(3, 2)
    with pytest.raises(ValueError, match="neither an input"):
        export(model, randn(2, 3), io.BytesIO(), dynamic_axes={"x": {0: "batch"}})
    with pytest.raises(TypeError, match="args"):
        export(model, "nope", io.BytesIO())
    with pytest.raises(ValueError, match="opset_version"):
        export(model, randn(2, 3), io.BytesIO(), opset_version=9)


def test_outputs_made_outside_autograd_are_refused() -> None:
    mha = nn.MultiheadAttention(4, 2, batch_first=True).eval()

    class Weights(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mha = mha

        def forward(self, x):
            return self.mha(x, x, x)  # (out, weights): the weights are not an op's result

    with pytest.raises(ExportError, match="not computed by traced gnn ops"):
        export(Weights(), randn(2, 3, 4), io.BytesIO())


def test_cli_export_of_a_saved_model(tmp_path, capsys) -> None:
    from gnn.cli import main
    from gnn.examples._common import save_example

    model = _example("digits_cnn", {"channels": [4, 6], "hidden": 12, "dropout": 0.25})
    config = {"channels": [4, 6], "hidden": 12, "dropout": 0.25}
    weights = tmp_path / "cnn.safetensors"
    save_example(model, weights, "digits-cnn", config, seed=0)
    out = tmp_path / "cnn.onnx"
    assert main(["export", str(weights), "--onnx", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for n in (1, 9):
        x = randn(n, 1, 8, 8)
        with gnn.no_grad():
            want = model.eval()(x).numpy()
        got = sess.run(None, {"input": x.numpy()})[0]
        assert np.abs(got - want).max() < TOL
    assert main(["export", str(tmp_path / "missing.safetensors"), "--onnx", str(out)]) == 2
    assert "no weights file" in capsys.readouterr().err


def test_cli_export_of_a_text_checkpoint(tmp_path) -> None:
    from gnn.cli import main
    from gnn.examples._common import save_example
    from gnn.models.char_tokenizer import CharTokenizer
    from gnn.models.gpt import GPT, GPTConfig

    config = GPTConfig(vocab_size=6, block_size=10, n_layer=1, n_head=2, n_embd=8)
    model = GPT(config).eval()
    weights = tmp_path / "gpt.safetensors"
    tok = CharTokenizer("abcdef")
    save_example(model, weights, "text", config.to_dict(), tokenizer=tok.to_dict(), seed=0)
    out = tmp_path / "gpt.onnx"
    assert main(["export", str(weights), "--onnx", str(out)]) == 0
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for shape in ((1, 3), (4, 10)):
        x = ids(6, *shape)
        with gnn.no_grad():
            want = model(x)[0].numpy()
        got = sess.run(None, {"idx": x.numpy()})[0]
        assert np.abs(got - want).max() < TOL


@pytest.mark.parametrize("opset", [18, 21])
def test_newer_opsets(opset: int) -> None:
    class Reduce(nn.Module):
        def forward(self, x):
            return x.mean(1) + x.max(1)[0] - x.sum(1) + x.logsumexp(1)

    buf = io.BytesIO()
    export(Reduce(), randn(2, 5), buf, opset_version=opset, dynamic_axes=BATCH)
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    x = randn(7, 5)
    with gnn.no_grad():
        want = Reduce()(x).numpy()
    assert np.abs(sess.run(None, {"input": x.numpy()})[0] - want).max() < TOL
