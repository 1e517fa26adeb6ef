"""Toy translation with nn.Transformer: English number words to digits
("three hundred forty two thousand seven" -> "342007"), pairs generated on the fly.

Held-out numbers never appear in training; decoding is greedy; the metric is exact match.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import gnn
from gnn import functional as F
from gnn import nn
from gnn.examples._common import arg, interruptible, plot, save_example
from gnn.examples.text import make_optimizer
from gnn.tensor import Tensor
from gnn.train import History

DEFAULTS = {
    "epochs": 8,  # evaluations; each follows `steps_per_epoch` steps
    "steps_per_epoch": 750,
    "batch_size": 64,
    "lr": 1e-3,
    "seed": 0,
    "max_number": 999_999,
    "test_size": 500,
    "d_model": 64,
    "nhead": 4,
    "layers": 2,
    "dim_feedforward": 128,
    "norm_first": True,
    "dropout": 0.0,
}

ONES = "zero one two three four five six seven eight nine".split()
TEENS = "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
SRC_WORDS = ["<pad>"] + ONES + TEENS + TENS[2:] + ["hundred", "thousand"]
TGT_TOKENS = ["<pad>", "<bos>", "<eos>"] + list("0123456789")
PAD, BOS, EOS = 0, 1, 2


def words_below_1000(n: int) -> list[str]:
    """English words for 0 < n < 1000 ("three hundred forty two")."""
    out: list[str] = []
    if n >= 100:
        out += [ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        out.append(TENS[n // 10])
        if n % 10:
            out.append(ONES[n % 10])
    elif n >= 10:
        out.append(TEENS[n - 10])
    elif n > 0:
        out.append(ONES[n])
    return out


def number_words(n: int) -> list[str]:
    """English words for 0 <= n < 1,000,000."""
    if n == 0:
        return ["zero"]
    out = []
    if n >= 1000:
        out += words_below_1000(n // 1000) + ["thousand"]
    return out + words_below_1000(n % 1000)


class Task:
    """Encodes number pairs as padded id arrays; numbers in `held_out` never reach training."""

    def __init__(self, max_number: int, test_size: int, seed: int) -> None:
        if not 10 <= max_number < 1_000_000:
            raise ValueError(f"translate: max_number must be in [10, 999999], got {max_number}")
        self.max_number = max_number
        self.src_index = {w: i for i, w in enumerate(SRC_WORDS)}
        rng = np.random.default_rng(seed + 1)
        test_size = min(test_size, (max_number + 1) // 5)
        self.test = rng.choice(max_number + 1, size=test_size, replace=False)
        self.held_out = set(self.test.tolist())
        self.src_len = max(len(number_words(n)) for n in self._probe())
        self.tgt_len = len(str(max_number)) + 2  # <bos> digits <eos>

    def _probe(self) -> list[int]:
        m = self.max_number
        return [m, 777_777 % (m + 1), 777 % (m + 1), 373_373 % (m + 1), 77_777 % (m + 1)]

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n training numbers (rejecting held-out ones)."""
        out: list[int] = []
        while len(out) < n:
            for x in rng.integers(0, self.max_number + 1, size=2 * n).tolist():
                if x not in self.held_out:
                    out.append(x)
        return np.array(out[:n])

    def encode(self, numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(src (N, S) word ids, tgt (N, T) = <bos> digits <eos> <pad>...)."""
        src = np.full((len(numbers), self.src_len), PAD, dtype=np.int64)
        tgt = np.full((len(numbers), self.tgt_len), PAD, dtype=np.int64)
        for i, n in enumerate(numbers.tolist()):
            words = [self.src_index[w] for w in number_words(n)]
            src[i, : len(words)] = words
            digits = [BOS] + [3 + int(c) for c in str(n)] + [EOS]
            tgt[i, : len(digits)] = digits
        return src, tgt


class NumberTranslator(nn.Module):
    """Word embeddings -> nn.Transformer (batch_first) -> digit logits."""

    def __init__(
        self, d_model: int, nhead: int, layers: int, dim_feedforward: int,
        norm_first: bool = True, dropout: float = 0.0,
    ) -> None:  # fmt: skip
        super().__init__()
        self.d_model = d_model
        self.src_emb = nn.Embedding(len(SRC_WORDS), d_model, padding_idx=PAD)
        self.tgt_emb = nn.Embedding(len(TGT_TOKENS), d_model, padding_idx=PAD)
        self.pos = nn.PositionalEncoding(d_model, dropout=0.0, max_len=64, batch_first=True)
        self.transformer = nn.Transformer(
            d_model, nhead, num_encoder_layers=layers, num_decoder_layers=layers,
            dim_feedforward=dim_feedforward, dropout=dropout, batch_first=True,
            norm_first=norm_first,
        )  # fmt: skip
        self.out = nn.Linear(d_model, len(TGT_TOKENS))

    def encode(self, src: Tensor) -> tuple[Tensor, Tensor]:
        pad = src == PAD
        x = self.pos(self.src_emb(src) * math.sqrt(self.d_model))
        return self.transformer.encoder(x, src_key_padding_mask=pad), pad

    def decode(self, tgt_in: Tensor, memory: Tensor, src_pad: Tensor) -> Tensor:
        T = tgt_in.shape[1]
        mask = nn.Transformer.generate_square_subsequent_mask(T, device=tgt_in.device)
        y = self.pos(self.tgt_emb(tgt_in) * math.sqrt(self.d_model))
        y = self.transformer.decoder(
            y, memory, tgt_mask=mask, tgt_is_causal=True, memory_key_padding_mask=src_pad
        )
        return self.out(y)  # (N, T, vocab)

    def forward(self, src: Tensor, tgt_in: Tensor) -> Tensor:
        memory, pad = self.encode(src)
        return self.decode(tgt_in, memory, pad)

    @gnn.no_grad()
    def greedy(self, src: Tensor, max_len: int) -> np.ndarray:
        """Greedy decoding: (N, <= max_len) token ids after <bos>, stopping at <eos>."""
        memory, pad = self.encode(src)
        N = src.shape[0]
        seq = np.full((N, 1), BOS, dtype=np.int64)
        done = np.zeros(N, dtype=bool)
        for _ in range(max_len):
            logits = self.decode(gnn.tensor(seq, device=src.device), memory, pad)
            nxt = logits.numpy()[:, -1].argmax(-1)
            nxt[done] = PAD
            seq = np.concatenate([seq, nxt[:, None]], axis=1)
            done |= nxt == EOS
            if done.all():
                break
        return seq[:, 1:]


def to_digits(ids: np.ndarray) -> str:
    """The digit string before the first <eos> (other special tokens make it wrong)."""
    out = []
    for i in ids.tolist():
        if i == EOS:
            break
        out.append(TGT_TOKENS[i] if i >= 3 else "?")
    return "".join(out)


def exact_match(model: NumberTranslator, task: Task, numbers: np.ndarray, device: Any) -> float:
    """Share of numbers translated exactly right by greedy decoding."""
    was_training = model.training
    model.eval()
    src, _ = task.encode(numbers)
    right = 0
    for i in range(0, len(numbers), 256):
        pred = model.greedy(gnn.tensor(src[i : i + 256], device=device), task.tgt_len)
        right += sum(to_digits(p) == str(n) for p, n in zip(pred, numbers[i : i + 256].tolist()))
    model.train(was_training)
    return right / max(len(numbers), 1)


def main(args: argparse.Namespace | None = None, log: Callable[..., Any] = print) -> dict:
    """Train, then report {"exact_match" (held-out), "train_exact_match", "loss", ...}."""
    cfg = {k: arg(args, k, v) for k, v in DEFAULTS.items()}
    quiet = bool(getattr(args, "quiet", False))
    device = getattr(args, "device", None)
    gnn.manual_seed(cfg["seed"])
    rng = np.random.default_rng(cfg["seed"])
    task = Task(cfg["max_number"], cfg["test_size"], cfg["seed"])
    model = NumberTranslator(
        cfg["d_model"], cfg["nhead"], cfg["layers"], cfg["dim_feedforward"], cfg["norm_first"],
        cfg["dropout"],
    )  # fmt: skip
    if device:
        model.to(device)
    opt = make_optimizer(model, cfg["lr"], 0.0)
    total = cfg["epochs"] * cfg["steps_per_epoch"]
    log(
        f"translate: number words -> digits for 0..{cfg['max_number']:,}, {len(task.test)} "
        f"held-out numbers; Transformer d_model {cfg['d_model']}, {cfg['layers']}+"
        f"{cfg['layers']} layers; {total} steps of batch {cfg['batch_size']}"
    )
    params = list(model.parameters())
    history = History()
    start = time.perf_counter()
    loss_value = float("nan")
    step = 0
    with interruptible(model, "translate", cfg) as guard:  # Ctrl-C: the model trained so far
        for epoch in range(cfg["epochs"]):
            for _ in range(cfg["steps_per_epoch"]):
                warm = min(1.0, (step + 1) / 100)
                decay = 0.5 * (1 + math.cos(math.pi * step / total))
                for g in opt.param_groups:
                    g["lr"] = cfg["lr"] * warm * (0.05 + 0.95 * decay)
                src, tgt = task.encode(task.sample(cfg["batch_size"], rng))
                s, t_in = gnn.tensor(src, device=device), gnn.tensor(tgt[:, :-1], device=device)
                t_out = tgt[:, 1:].copy()
                t_out[t_out == PAD] = -100  # padding positions do not count
                with guard.step():
                    logits = model(s, t_in)
                    loss = F.cross_entropy(
                        logits.reshape(-1, len(TGT_TOKENS)),
                        gnn.tensor(t_out.reshape(-1), device=device),
                    )
                    opt.zero_grad()
                    loss.backward()
                    nn.utils.clip_grad_norm_(params, 1.0)
                    opt.step()
                step += 1
                loss_value = loss.item()
            logs = {"loss": loss_value}
            if not quiet:
                em = exact_match(model, task, task.test[:200], device)
                logs["exact_match_first_200"] = em
                log(
                    f"epoch {epoch + 1}/{cfg['epochs']} step {step}: loss {loss_value:.4f}, "
                    f"held-out exact match (first 200) {em:.3f} "
                    f"({time.perf_counter() - start:.0f} s)"
                )
            history.record(epoch, logs)
        test_em = exact_match(model, task, task.test, device)
        train_em = exact_match(model, task, task.sample(len(task.test), rng), device)
        src, _ = task.encode(task.test[:3])
        pred = model.eval().greedy(gnn.tensor(src, device=device), task.tgt_len)
    for n, p in zip(task.test[:3].tolist(), pred):
        log(f"  {' '.join(number_words(n))!r} -> {to_digits(p)}")
    log(f"held-out exact match {test_em:.3f} ({len(task.test)} numbers), training {train_em:.3f}")
    save = getattr(args, "save", None)
    if save:  # before the plot: a failing plot must not lose it
        save_example(model, save, "translate", cfg, metrics={"exact_match": test_em})
        log(f"saved to {save}")
    plot(history, getattr(args, "plot", None), log, saved_to=save)
    return {
        "exact_match": test_em,
        "train_exact_match": train_em,
        "loss": loss_value,
        "steps": step,
        "seconds": time.perf_counter() - start,
    }
