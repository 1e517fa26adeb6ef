"""Training in mixed precision: digits MLP and a char GPT with bfloat16 autocast land within 1 %
accuracy / 2 % loss of float32; fit(mixed_precision=...) and `gnn train --precision`; float16 +
GradScaler end to end on CUDA (the fake CuPy in CI)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import gnn
import gnn.functional as F
from gnn import nn
from gnn.cli import main
from gnn.datasets import digits, train_test_split

pytest.importorskip("ml_dtypes")


def _digits():
    data = digits()
    return train_test_split(data.x, data.y, test_fraction=0.2, seed=0, stratify=True)


def _train_digits_mlp(dtype) -> tuple[float, float]:
    """The recipe of tests/test_models_learn.py (Adam 2e-3, 30 epochs of 32), under autocast."""
    x_tr, x_te, y_tr, y_te = _digits()
    gnn.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = gnn.optim.Adam(model.parameters(), lr=2e-3)
    rng = np.random.default_rng(0)
    amp = gnn.autocast("cpu", dtype=dtype, enabled=dtype is not None)
    for _ in range(30):
        order = rng.permutation(len(x_tr))
        for i in range(0, len(x_tr), 32):
            idx = order[i : i + 32]
            opt.zero_grad()
            with amp:
                loss = F.cross_entropy(model(gnn.tensor(x_tr[idx])), gnn.tensor(y_tr[idx]))
            loss.backward()
            opt.step()
    assert all(p.dtype == np.float32 for p in model.parameters())  # master weights
    with gnn.no_grad(), amp:
        out = model(gnn.tensor(x_te))
        test_loss = float(F.cross_entropy(out, gnn.tensor(y_te)).item())
    return float((out.float().numpy().argmax(axis=1) == y_te).mean()), test_loss


def test_digits_mlp_bf16_matches_fp32() -> None:
    acc32, loss32 = _train_digits_mlp(None)
    acc16, loss16 = _train_digits_mlp(gnn.bfloat16)
    assert acc32 >= 0.95, acc32
    assert abs(acc16 - acc32) <= 0.01, (acc16, acc32)
    assert abs(loss16 - loss32) <= 0.02 * loss32, (loss16, loss32)


def _stdlib_text(n: int) -> str:
    parts = [
        (Path(os.__file__).parent / name).read_text() for name in ("argparse.py", "textwrap.py")
    ]
    return "".join(parts)[:n]


def _train_char_gpt(dtype, steps: int = 60) -> tuple[float, float]:
    from gnn.models.char_tokenizer import CharTokenizer
    from gnn.models.gpt import GPT, GPTConfig

    text = _stdlib_text(120_000)
    tok = CharTokenizer(sorted(set(text)))
    data = tok.encode(text)
    split = int(len(data) * 0.9)

    def batch(part: np.ndarray, rng: np.random.Generator) -> tuple[gnn.Tensor, gnn.Tensor]:
        starts = rng.integers(0, len(part) - 33, size=8)
        rows = starts[:, None] + np.arange(32)[None, :]
        return gnn.tensor(part[rows]), gnn.tensor(part[rows + 1])

    gnn.manual_seed(0)
    cfg = GPTConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=2, n_head=2, n_embd=32)
    model = GPT(cfg)
    opt = gnn.optim.AdamW(model.parameters(), lr=3e-3)
    amp = gnn.autocast("cpu", dtype=dtype, enabled=dtype is not None)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        x, y = batch(data[:split], rng)
        opt.zero_grad()
        with amp:
            _, loss = model(x, y)
        loss.backward()
        opt.step()
    rng = np.random.default_rng(1)
    with gnn.no_grad():  # the trained float32 weights, judged the same way for both runs
        losses = [float(model(*batch(data[split:], rng))[1].item()) for _ in range(8)]
    return float(np.mean(losses)), float(np.log(tok.vocab_size))


@pytest.mark.slow
def test_char_gpt_bf16_matches_fp32() -> None:
    loss32, uniform = _train_char_gpt(None)
    loss16, _ = _train_char_gpt(gnn.bfloat16)
    assert loss32 < 0.7 * uniform, (loss32, uniform)  # it learned
    assert abs(loss16 - loss32) <= 0.02 * loss32, (loss16, loss32)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_fit_mixed_precision_matches_fp32(precision) -> None:
    x_tr, x_te, y_tr, y_te = _digits()
    results = {}
    for mp in (None, precision):
        gnn.manual_seed(0)
        model = gnn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10), nn.Softmax(-1))
        model.compile(
            optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"]
        )
        hist = model.fit(x_tr, y_tr, epochs=8, batch_size=32, verbose=0, mixed_precision=mp)
        assert all(p.dtype == np.float32 for p in model.parameters())
        results[mp] = (model.evaluate(x_te, y_te, verbose=0), hist.history["loss"])
    ref, got = results[None][0], results[precision][0]
    assert ref["accuracy"] >= 0.9, ref
    assert abs(got["accuracy"] - ref["accuracy"]) <= 0.01, (got, ref)
    assert results[precision][1] != results[None][1]  # it did train differently
    with pytest.raises(ValueError, match="'fp32', 'bf16' or 'fp16'"):
        model.fit(x_tr, y_tr, epochs=1, verbose=0, mixed_precision="int8")


def test_cli_precision(capsys) -> None:
    assert main(["train", "digits", "--epochs", "2", "--seed", "0", "--precision", "bf16"]) == 0
    assert "test_accuracy" in capsys.readouterr().out
    assert main(["train", "xor", "--epochs", "50", "--seed", "0", "--precision", "fp16"]) == 0
    assert "does not scale the loss" in capsys.readouterr().err
    assert not gnn.amp.is_autocast_enabled("cpu")  # nothing leaks out of the command
    with pytest.raises(SystemExit):
        main(["train", "digits", "--precision", "fp8"])


@pytest.mark.gpu
def test_float16_autocast_and_grad_scaler_on_cuda() -> None:
    """float16 + GradScaler end to end on gnn's CUDA backend (the fake CuPy in CI)."""
    if not gnn.cuda_available():
        pytest.skip("needs CuPy and a CUDA device")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 10)).astype(np.float32)
    y = (x[:, :3].sum(axis=1) > 0).astype(np.int64)
    gnn.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 2)).to("cuda")
    opt = gnn.optim.SGD(model.parameters(), lr=0.2)
    scaler = gnn.amp.GradScaler("cuda", init_scale=2.0**10, growth_interval=4)
    xs, ys = gnn.tensor(x, device="cuda"), gnn.tensor(y, device="cuda")
    losses, skipped, scales = [], [], []
    for step in range(12):
        opt.zero_grad()
        with gnn.autocast("cuda", dtype=gnn.float16):
            hidden = model[0](xs)
            assert hidden.dtype == np.float16 and hidden.device.type == "cuda"
            loss = F.cross_entropy(model[2](model[1](hidden)), ys)
        assert loss.dtype == np.float32
        scaler.scale(loss).backward()
        if step == 5:  # an overflowed gradient: this step must be skipped
            model[0].weight.grad.array[0, 0] = float("inf")
        before = model[0].weight.numpy().copy()
        scaler.step(opt)
        scaler.update()
        skipped.append(np.array_equal(before, model[0].weight.numpy()))
        losses.append(float(loss.item()))
        scales.append(scaler.get_scale())
        assert model[0].weight.grad.dtype == np.float32
    assert [i for i, s in enumerate(skipped) if s] == [5]
    assert scales[:6] == [2.0**10] * 3 + [2.0**11] * 2 + [2.0**10]  # grew after 4, backed off
    assert losses[-1] < 0.8 * losses[0], losses
