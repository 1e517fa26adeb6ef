"""Character-level GPT on a real text (shipped offline): train with `gnn train text`, then sample
with `gnn generate --checkpoint PATH --prompt TEXT`.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypedDict

import numpy as np

import gnn
from gnn.examples._common import arg, interruptible, plot, read_metadata, save_example
from gnn.models import GPT, CharTokenizer, GPTConfig
from gnn.optim.optimizer import Optimizer
from gnn.tensor import Tensor


class Settings(TypedDict):
    """The recipe's settings: DEFAULTS, each replaced by the command line's value when given."""

    epochs: int
    steps_per_epoch: int
    batch_size: int
    lr: float
    seed: int
    block_size: int
    n_layer: int
    n_head: int
    n_embd: int
    dropout: float
    weight_decay: float
    warmup: int
    eval_batches: int
    val_fraction: float
    save: str


#: The settings a command line may give (argparse names them as Settings does).
_FROM_ARGS: tuple[
    Literal["epochs", "batch_size", "lr", "seed", "steps_per_epoch", "block_size", "n_layer",
            "n_head", "n_embd", "eval_batches"], ...,
] = ("epochs", "batch_size", "lr", "seed", "steps_per_epoch", "block_size", "n_layer", "n_head",
     "n_embd", "eval_batches")  # fmt: skip

# Measured on the 2-core CPU of the development machine: 6.5 to 9.3 minutes (docs/transformer.md).
DEFAULTS: Settings = {
    "epochs": 20,  # evaluations; each follows `steps_per_epoch` training steps
    "steps_per_epoch": 150,
    "batch_size": 32,
    "lr": 3e-3,
    "seed": 0,
    "block_size": 64,
    "n_layer": 4,
    "n_head": 4,
    "n_embd": 128,
    "dropout": 0.0,
    "weight_decay": 0.1,
    "warmup": 100,
    "eval_batches": 20,
    "val_fraction": 0.1,
    "save": "gnn-text.safetensors",
}
GENERATE_DEFAULTS = {"max_new_tokens": 200, "temperature": 1.0, "top_k": None, "seed": None}


# ---- data ----------------------------------------------------------------------------------------


def load_corpus(path: str | None = None, max_chars: int | None = None) -> str:
    """The training text: a file when given, else the corpus shipped with gnn.datasets."""
    if path:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"text: no text file at {path}")
        text = p.read_text(encoding="utf-8", errors="replace")
    else:
        try:
            from gnn.datasets import text_corpus
        except ImportError:  # a build without gnn.datasets' corpus: the stdlib's own source
            text = _stdlib_source(max_chars or 2_000_000)
        else:
            text = text_corpus(max_chars=max_chars)
    text = text[:max_chars] if max_chars else text
    if len(text) < 1000:
        raise ValueError(f"text: the corpus has {len(text)} characters; at least 1000 are needed")
    return text


def _stdlib_source(max_chars: int) -> str:
    """Python source files of the standard library, concatenated (always there, offline)."""
    import os

    folder = Path(os.__file__).parent
    parts, n = [], 0
    for f in sorted(folder.glob("*.py")):
        chunk = f.read_text(encoding="utf-8", errors="replace")
        parts.append(chunk)
        n += len(chunk)
        if n >= max_chars:
            break
    return "".join(parts)[:max_chars]


def unigram_loss(train: np.ndarray, val: np.ndarray, vocab: int) -> float:
    """Cross-entropy (nats/char) of val under train's character frequencies (add-one smoothed)."""
    counts = np.bincount(train, minlength=vocab).astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum())
    return float(-logp[val].mean())


def get_batch(
    data: np.ndarray, block: int, batch: int, rng: np.random.Generator
) -> tuple[Tensor, Tensor]:
    """Random windows: inputs (B, T) and the same windows shifted by one as targets."""
    starts = rng.integers(0, len(data) - block - 1, size=batch)
    rows = starts[:, None] + np.arange(block)[None, :]
    return gnn.tensor(data[rows]), gnn.tensor(data[rows + 1])


# ---- optimisation --------------------------------------------------------------------------------


def make_optimizer(model: gnn.nn.Module, lr: float, weight_decay: float) -> Optimizer:
    """AdamW with weight decay on matrices only (not on biases, LayerNorm or position rows)."""
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "wpe" not in n]
    other = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "wpe" not in n)]
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": other, "weight_decay": 0.0},
    ]
    return gnn.optim.AdamW(groups, lr=lr, betas=(0.9, 0.99))


def lr_at(step: int, total: int, base: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to a tenth of the base rate."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


@gnn.no_grad()
def estimate_loss(model: GPT, data: np.ndarray, cfg: Settings, rng: np.random.Generator) -> float:
    """Mean loss over cfg["eval_batches"] random batches, in eval mode."""
    was_training = model.training
    model.eval()
    losses = []
    for _ in range(cfg["eval_batches"]):
        x, y = get_batch(data, cfg["block_size"], cfg["batch_size"], rng)
        losses.append(model(x, y)[1].item())
    model.train(was_training)
    return float(np.mean(losses))


def sample_text(
    model: GPT, tok: CharTokenizer, prompt: str, n: int, temperature: float = 1.0,
    top_k: int | None = None,
) -> str:  # fmt: skip
    """prompt followed by n generated characters."""
    ids = tok.encode(prompt) if prompt else np.array([tok.stoi.get("\n", 0)], dtype=np.int64)
    was_training = model.training
    model.eval()
    out = model.generate(gnn.tensor(ids[None, :]), n, temperature=temperature, top_k=top_k)
    model.train(was_training)
    text = tok.decode(out.numpy()[0])
    return text if prompt else text[1:]


# ---- recipes -------------------------------------------------------------------------------------


def main(args: argparse.Namespace | None = None, log: Callable[..., Any] = print) -> dict:
    """Train the character GPT; returns {"val_loss", "train_loss", "unigram_loss", ...}."""
    cfg = DEFAULTS.copy()
    for name in _FROM_ARGS:
        cfg[name] = arg(args, name, DEFAULTS[name])
    quiet = bool(getattr(args, "quiet", False))
    gnn.manual_seed(cfg["seed"])
    rng = np.random.default_rng(cfg["seed"])

    text = load_corpus(getattr(args, "text", None), getattr(args, "max_chars", None))
    tok = CharTokenizer.from_text(text)
    data = tok.encode(text)
    n_val = max(int(len(data) * cfg["val_fraction"]), cfg["block_size"] + 2)
    train, val = data[:-n_val], data[-n_val:]
    baseline = unigram_loss(train, val, tok.vocab_size)
    config = GPTConfig(
        vocab_size=tok.vocab_size, block_size=cfg["block_size"], n_layer=cfg["n_layer"],
        n_head=cfg["n_head"], n_embd=cfg["n_embd"], dropout=cfg["dropout"],
    )  # fmt: skip
    model = GPT(config)
    device = getattr(args, "device", None)
    if device:
        model.to(device)
    opt = make_optimizer(model, cfg["lr"], cfg["weight_decay"])
    total = cfg["epochs"] * cfg["steps_per_epoch"]
    log(
        f"text: {len(text):,} characters, vocabulary {tok.vocab_size}; GPT {cfg['n_layer']} layers"
        f" x {cfg['n_embd']} wide, {cfg['n_head']} heads, context {cfg['block_size']}, "
        f"{model.num_parameters():,} parameters; {total} steps of batch {cfg['batch_size']}"
    )
    if not getattr(args, "text", None):
        try:
            from gnn.datasets import text_source

            log(f"corpus: {text_source()}")
        except ImportError:
            log("corpus: the Python standard library's source (gnn.datasets has no text corpus)")
    log(
        f"baselines: uniform log(V) = {math.log(tok.vocab_size):.3f}, "
        f"unigram = {baseline:.3f} nats/char"
    )
    bar = _progress(total, quiet)
    params = list(model.parameters())
    history: dict[str, list] = {"step": [], "train_loss": [], "val_loss": []}
    start = time.perf_counter()
    step = 0
    guard = interruptible(
        model, "text", config.to_dict(), tokenizer=tok.to_dict(), seed=cfg["seed"]
    )  # Ctrl-C: the model trained so far, which `gnn generate` can sample from
    with guard:
        try:
            for epoch in range(cfg["epochs"]):
                for _ in range(cfg["steps_per_epoch"]):
                    lr = lr_at(step, total, cfg["lr"], cfg["warmup"])
                    for g in opt.param_groups:
                        g["lr"] = lr
                    x, y = get_batch(train, cfg["block_size"], cfg["batch_size"], rng)
                    if device:
                        x, y = x.to(device), y.to(device)
                    with guard.step():
                        _, loss = model(x, y)
                        opt.zero_grad()
                        loss.backward()
                        gnn.nn.utils.clip_grad_norm_(params, 1.0)
                        opt.step()
                    step += 1
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
                tr_loss = estimate_loss(model, train, cfg, rng)
                va_loss = estimate_loss(model, val, cfg, rng)
                history["step"].append(step)
                history["train_loss"].append(tr_loss)
                history["val_loss"].append(va_loss)
                line = (
                    f"epoch {epoch + 1}/{cfg['epochs']} step {step}: train loss {tr_loss:.4f}, "
                    f"val loss {va_loss:.4f} ({time.perf_counter() - start:.0f} s)"
                )
                if bar is not None:
                    bar.write(line)
                elif not quiet:
                    log(line)
        finally:
            if bar is not None:
                bar.close()
        took = time.perf_counter() - start
        sample = sample_text(model, tok, "", 300, temperature=0.8)
    log("sample:\n" + sample)
    path = arg(args, "save", DEFAULTS["save"])
    if path:  # before the plot: a plot that fails must not lose the model
        save_example(
            model, path, "text", config.to_dict(), tokenizer=tok.to_dict(), seed=cfg["seed"],
            metrics={"val_loss": history["val_loss"][-1], "unigram_loss": baseline},
        )  # fmt: skip
        log(f"saved to {path} (sample more with: gnn generate --checkpoint {path} --prompt TEXT)")
    plot(_Curves(history), getattr(args, "plot", None), log, saved_to=path)
    return {
        "val_loss": history["val_loss"][-1],
        "train_loss": history["train_loss"][-1],
        "unigram_loss": baseline,
        "uniform_loss": math.log(tok.vocab_size),
        "steps": step,
        "seconds": took,
    }


def load_model(path: str) -> tuple[GPT, CharTokenizer]:
    """The GPT and tokenizer saved by `gnn train text --save PATH`."""
    from gnn.examples._common import load_weights

    meta = read_metadata(path)
    if meta.get("example") != "text":
        raise ValueError(f"{path}: saved by the {meta.get('example')!r} example, not 'text'")
    model = GPT(GPTConfig(**meta["config"]))
    model.load_state_dict(load_weights(path))
    model.eval()
    return model, CharTokenizer.from_dict(meta["tokenizer"])


def generate_main(args: argparse.Namespace | None = None, log: Callable[..., Any] = print) -> str:
    """Print (and return) text sampled from a checkpoint after an optional prompt."""
    path = getattr(args, "checkpoint", None) or DEFAULTS["save"]
    model, tok = load_model(path)
    device = getattr(args, "device", None)
    if device:
        model.to(device)
    seed = arg(args, "seed", GENERATE_DEFAULTS["seed"])
    if seed is not None:
        gnn.manual_seed(seed)
    prompt = getattr(args, "prompt", None) or ""
    if len(prompt) > model.config.block_size:
        raise ValueError(
            f"generate: the prompt has {len(prompt)} characters, more than the model's context "
            f"of {model.config.block_size}; shorten it"
        )
    top_k = arg(args, "top_k", GENERATE_DEFAULTS["top_k"])
    text = sample_text(
        model, tok, prompt, arg(args, "max_new_tokens", GENERATE_DEFAULTS["max_new_tokens"]),
        temperature=arg(args, "temperature", GENERATE_DEFAULTS["temperature"]), top_k=top_k,
    )  # fmt: skip
    log(text)
    return text


def _progress(total: int, quiet: bool) -> Any:
    """A tqdm bar on a terminal; None otherwise (then one line per evaluation is printed)."""
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="training", unit="step", dynamic_ncols=True)


class _Curves:
    """The training and validation losses by step (History.plot draws them by epoch)."""

    def __init__(self, history: dict) -> None:
        self.history = history

    def plot(self, path: str) -> None:
        """Write the two curves to `path` (ImportError without matplotlib)."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError("matplotlib is not installed (pip install 'gnn[plot]')") from None
        fig, ax = plt.subplots(figsize=(6, 4))
        try:
            ax.plot(self.history["step"], self.history["train_loss"], label="train")
            ax.plot(self.history["step"], self.history["val_loss"], label="validation")
            ax.set_xlabel("step")
            ax.set_ylabel("loss (nats/char)")
            ax.legend()
            fig.savefig(path, dpi=100, bbox_inches="tight")
        finally:
            plt.close(fig)
