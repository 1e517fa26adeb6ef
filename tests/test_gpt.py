"""gnn.models.GPT: structure, weight tying, the key/value cache (same logits, O(1) work per
token), sampling, errors, the char tokenizer, and a short run that must really learn.
"""

import argparse
import math
from pathlib import Path

import numpy as np
import pytest

import gnn
import gnn.functional as F
from gnn.models import GPT, CharTokenizer, GPTConfig
from gnn.models.gpt import KVCache

SMALL = GPTConfig(vocab_size=11, block_size=16, n_layer=2, n_head=2, n_embd=16)


def small_model(seed=0, **kw):
    gnn.manual_seed(seed)
    cfg = GPTConfig(**{**SMALL.to_dict(), **kw})
    return GPT(cfg).eval()


def test_state_dict_uses_nanogpt_names_and_ties_weights():
    m = small_model()
    keys = set(m.state_dict())
    for k in ["transformer.wte.weight", "transformer.wpe.weight", "transformer.h.1.ln_2.bias",
              "transformer.h.0.attn.c_attn.weight", "transformer.h.0.mlp.c_proj.weight",
              "transformer.ln_f.weight", "lm_head.weight"]:  # fmt: skip
        assert k in keys, k
    assert m.lm_head.weight is m.transformer["wte"].weight
    idx = gnn.tensor(np.array([[1, 2, 3]]))
    m.train()
    _, loss = m(idx, gnn.tensor(np.array([[2, 3, 4]])))
    loss.backward()
    g = m.transformer["wte"].weight.grad.numpy()
    assert np.abs(g[7]).sum() > 0  # id 7 is never an input: its gradient comes from the head


def test_loss_is_cross_entropy_of_logits():
    m = small_model()
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 11, (2, 5)), rng.integers(0, 11, (2, 5))
    logits, loss = m(gnn.tensor(x), gnn.tensor(y))
    z = logits.numpy().reshape(-1, 11).astype(np.float64)
    lse = np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1)
    expected = (lse - z[np.arange(10), y.reshape(-1)]).mean()
    assert logits.shape == (2, 5, 11)
    assert abs(loss.item() - expected) < 1e-5


def test_cached_logits_equal_full_recomputation():
    m = small_model()
    seq = np.random.default_rng(1).integers(0, 11, (2, 16))
    with gnn.no_grad():
        full = m(gnn.tensor(seq))[0].numpy()
        cache = KVCache(2, 16)
        parts = [m(gnn.tensor(seq[:, :6]), cache=cache)[0].numpy()]  # prefill 6 positions
        for t in range(6, 16):
            parts.append(m(gnn.tensor(seq[:, t : t + 1]), cache=cache)[0].numpy())
    np.testing.assert_allclose(np.concatenate(parts, axis=1), full, atol=1e-5)


def count_mlp_rows(m):
    """Wrap the first block's MLP to count the positions (rows) it processes."""
    mlp = m.transformer["h"][0].mlp
    rows = []
    forward = mlp.forward

    def counting(x):
        rows.append(x.shape[0] * x.shape[1])
        return forward(x)

    object.__setattr__(mlp, "forward", counting)
    return rows


def test_generation_costs_one_position_per_token_with_cache():
    m = small_model(block_size=64)
    rows = count_mlp_rows(m)
    prompt = gnn.tensor(np.array([[1, 2, 3, 4]]))
    m.generate(prompt, 20, use_cache=True)
    assert rows[0] == 4 and rows[1:] == [1] * 19  # prefill, then one row per new token
    rows.clear()
    m.generate(prompt, 20, use_cache=False)
    assert sum(rows) == sum(range(4, 24))  # without the cache the whole prefix runs each time


def test_cached_and_uncached_generation_agree():
    m = small_model()
    prompt = gnn.tensor(np.array([[1, 2, 3], [4, 5, 6]]))
    gnn.manual_seed(3)
    a = m.generate(prompt, 13, temperature=0.9, use_cache=True).numpy()
    gnn.manual_seed(3)
    b = m.generate(prompt, 13, temperature=0.9, use_cache=False).numpy()
    np.testing.assert_array_equal(a, b)  # 16 tokens: within block_size the logits are equal
    gnn.manual_seed(3)
    np.testing.assert_array_equal(m.generate(prompt, 13, temperature=0.9).numpy(), a)


def test_greedy_and_top_k_1_pick_the_argmax():
    m = small_model()
    prompt = gnn.tensor(np.array([[5, 1]]))
    out = m.generate(prompt, 6, temperature=0.0).numpy()
    seq = out[:, :2]
    for _ in range(6):  # the argmax of a full forward pass at every step
        logits = m(gnn.tensor(seq))[0].numpy()[:, -1]
        seq = np.concatenate([seq, logits.argmax(-1)[:, None]], axis=1)
    np.testing.assert_array_equal(out, seq)
    np.testing.assert_array_equal(m.generate(prompt, 6, top_k=1).numpy(), out)


def test_generation_past_block_size_slides_the_window():
    m = small_model(block_size=8)
    rows = count_mlp_rows(m)
    out = m.generate(gnn.tensor(np.array([[1, 2, 3]])), 40)
    assert out.shape == (1, 43)
    assert max(rows) <= 8 and sum(rows) < 3 * 43  # amortised O(1) positions per token


def test_sampling_follows_the_distribution():
    m = small_model()
    # A model whose next-token distribution we know: zero weights, a bias on ln_f -> uniform.
    for p in m.parameters():
        p.array[...] = 0
    gnn.manual_seed(0)
    out = m.generate(gnn.tensor(np.zeros((400, 1), dtype=np.int64)), 1).numpy()[:, 1]
    counts = np.bincount(out, minlength=11)
    assert counts.min() > 15 and counts.max() < 60  # ~36 each under uniform sampling


def test_errors():
    m = small_model()
    with pytest.raises(ValueError, match="prompt has 17 tokens, more than the context"):
        m.generate(gnn.tensor(np.zeros((1, 17), dtype=np.int64)), 3)
    with pytest.raises(IndexError, match="id 11 is out of range"):
        m(gnn.tensor(np.array([[1, 11]])))
    with pytest.raises(ValueError, match="longer than block_size 16"):
        m(gnn.tensor(np.zeros((1, 17), dtype=np.int64)))
    with pytest.raises(ValueError, match="n_embd 10 must be divisible by n_head 4"):
        GPT(GPTConfig(n_embd=10, n_head=4))
    with pytest.raises(ValueError, match="temperature"):
        m.generate(gnn.tensor(np.array([[1]])), 2, temperature=-1.0)


def test_char_tokenizer_round_trip_and_errors():
    tok = CharTokenizer.from_text("hello world\n")
    assert tok.vocab_size == len(set("hello world\n"))
    ids = tok.encode("low\n")
    assert tok.decode(ids) == "low\n"
    assert CharTokenizer.from_dict(tok.to_dict()).chars == tok.chars
    with pytest.raises(ValueError, match=r"3 character\(s\) not in the vocabulary.*'axz'"):
        tok.encode("zax")


def stdlib_text(n: int) -> str:
    import os

    parts = []
    for name in ("argparse.py", "textwrap.py", "shlex.py", "string.py"):
        parts.append((Path(os.__file__).parent / name).read_text())
    return "".join(parts)[:n]


@pytest.mark.slow
def test_char_gpt_learns_and_generates(tmp_path):
    from gnn.examples import text

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(stdlib_text(120_000))
    ckpt = tmp_path / "gpt.safetensors"
    args = argparse.Namespace(
        epochs=2, steps_per_epoch=100, batch_size=16, lr=3e-3, seed=0, device=None,
        save=str(ckpt), plot=None, text=str(corpus), quiet=True, block_size=32, n_layer=2,
        n_head=2, n_embd=64, eval_batches=8,
    )  # fmt: skip
    m = text.main(args, log=lambda *a: None)
    assert m["val_loss"] < 0.7 * m["uniform_loss"], m
    assert m["val_loss"] < m["unigram_loss"] - 0.5, m
    gen = argparse.Namespace(checkpoint=str(ckpt), prompt="def ", max_new_tokens=30,
                             temperature=0.8, top_k=5, seed=1, device=None)  # fmt: skip
    out = text.generate_main(gen, log=lambda *a: None)
    assert out.startswith("def ") and len(out) == 34
    gen.prompt = "x" * 33
    with pytest.raises(ValueError, match="longer than|more than"):
        text.generate_main(gen, log=lambda *a: None)
    assert math.isfinite(m["train_loss"])


def test_unigram_baseline_is_cross_entropy():
    from gnn.examples.text import unigram_loss

    train = np.array([0, 0, 1, 2])
    val = np.array([0, 1])
    p = np.array([3, 2, 2]) / 7  # add-one smoothed counts
    assert abs(unigram_loss(train, val, 3) + np.log(p[[0, 1]]).mean()) < 1e-12


def test_functional_names_registered():
    assert F.scaled_dot_product_attention and F.layer_norm and F.embedding
