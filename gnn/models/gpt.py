"""GPT: a decoder-only transformer language model (GPT-2 layout, nanoGPT's parameter names).

Token + learned position embeddings, pre-norm blocks of causal self-attention and a GELU MLP, a
final LayerNorm, and an output layer tied to the token embedding. `generate` keeps a key/value
cache, so each new token runs one position through the network instead of the whole prefix.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import gnn
from gnn import functional as F
from gnn import nn
from gnn.ops.bias_gelu import bias_gelu
from gnn.tensor import Tensor


@dataclass
class GPTConfig:
    """Sizes of a GPT; the defaults are a small character-level model."""

    vocab_size: int = 65
    block_size: int = 128
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True

    def to_dict(self) -> dict:
        """The config as a plain dict (for JSON beside a checkpoint)."""
        return asdict(self)


class KVCache:
    """Keys and values of the positions seen so far, per layer: arrays (B, nh, block_size, hs)."""

    def __init__(self, n_layer: int, capacity: int) -> None:
        self.k: list[Any] = [None] * n_layer
        self.v: list[Any] = [None] * n_layer
        self.capacity = capacity  # block_size: positions the arrays hold
        self.length = 0  # positions filled


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where position t sees positions <= t."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        C = config.n_embd
        self.c_attn = nn.Linear(C, 3 * C, bias=config.bias)
        self.c_proj = nn.Linear(C, C, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head, self.n_embd, self.dropout = config.n_head, C, config.dropout

    def forward(self, x: Tensor, cache: KVCache | None = None, layer: int = 0) -> Tensor:
        B, T, C = x.shape
        nh, hs = self.n_head, C // self.n_head
        qkv = self.c_attn(x).reshape(B, T, 3, nh, hs).permute(2, 0, 3, 1, 4)  # (3, B, nh, T, hs)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (B, nh, T, hs)
        if cache is None:
            p = self.dropout if self.training else 0.0
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        else:
            y = self._cached(q, k, v, cache, layer)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, C)
        return self.resid_dropout(self.c_proj(y))

    def _cached(self, q: Tensor, k: Tensor, v: Tensor, cache: KVCache, layer: int) -> Tensor:
        """Append this step's keys/values to the cache and attend over everything cached."""
        # Raw arrays through the public backend: the cache is written in place, one slice per
        # layer and token, where Tensor ops would add graph nodes and copies for nothing.
        be = q.backend
        xp = be.xp
        B, nh, T, hs = q.shape
        start = cache.length
        if cache.k[layer] is None:
            cache.k[layer] = xp.zeros((B, nh, cache.capacity, hs), dtype=k.dtype)
            cache.v[layer] = xp.zeros((B, nh, cache.capacity, hs), dtype=v.dtype)
        cache.k[layer][:, :, start : start + T] = k.array
        cache.v[layer][:, :, start : start + T] = v.array
        keys = Tensor.wrap(cache.k[layer][:, :, : start + T], be)  # (B, nh, S, hs)
        values = Tensor.wrap(cache.v[layer][:, :, : start + T], be)
        mask = None
        if T > 1:  # new query i (position start + i) sees keys 0 .. start + i
            mask = Tensor.wrap(xp.tri(T, start + T, k=start, dtype=bool), be)
        return F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)


class MLP(nn.Module):
    """Linear(C, 4C) -> GELU (tanh form, as GPT-2) -> Linear(4C, C) -> dropout."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        C = config.n_embd
        self.c_fc = nn.Linear(C, 4 * C, bias=config.bias)
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * C, C, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        fc = self.c_fc
        # fused on a GPU only: on the CPU the extra h = x + b array cost 5% of a GPT step
        if fc.bias is None or type(self.gelu) is not nn.GELU or x.backend.name != "cuda":
            return self.dropout(self.c_proj(self.gelu(fc(x))))
        # the bias add fused into the GELU: one op (one kernel each way on a GPU), same parameters
        h = bias_gelu(F.linear(x, fc.weight), fc.bias, self.gelu.approximate)
        return self.dropout(self.c_proj(h))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: Tensor, cache: KVCache | None = None, layer: int = 0) -> Tensor:
        x = x + self.attn(self.ln_1(x), cache, layer)
        return x + self.mlp(self.ln_2(x))


def _check_config(config: GPTConfig) -> None:
    for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
        value = getattr(config, name)
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"GPT: config.{name} must be a positive int, got {value!r}")
    if config.n_embd % config.n_head:
        raise ValueError(f"GPT: n_embd {config.n_embd} must be divisible by n_head {config.n_head}")
    if not 0.0 <= config.dropout < 1.0:
        raise ValueError(f"GPT: dropout must be in [0, 1), got {config.dropout}")


class GPT(nn.Module):
    """Decoder-only language model: logits (B, T, vocab_size) for token ids (B, T)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        _check_config(config)
        self.config = config
        C = config.n_embd
        self.transformer = nn.ModuleDict(
            {
                "wte": nn.Embedding(config.vocab_size, C),
                "wpe": nn.Embedding(config.block_size, C),
                "drop": nn.Dropout(config.dropout),
                "h": nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                "ln_f": nn.LayerNorm(C, bias=config.bias),
            }
        )
        self.lm_head = nn.Linear(C, config.vocab_size, bias=False)
        self.lm_head.weight = self.transformer["wte"].weight  # weight tying
        self._init_weights()

    def _init_weights(self) -> None:
        """GPT-2's init: N(0, 0.02) weights, zero biases, residual projections scaled down."""
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * self.config.n_layer))
            elif name.endswith(".bias"):
                nn.init.zeros_(p)
            elif p.ndim == 2:
                nn.init.normal_(p, 0.0, 0.02)
            # LayerNorm weights stay 1

    def num_parameters(self, non_embedding: bool = True) -> int:
        """Parameter count (tied weights once); without the position table by default."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.transformer["wpe"].weight.numel()
        return n

    def forward(
        self, idx: Tensor, targets: Tensor | None = None, cache: KVCache | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """(logits (B, T, V), mean cross-entropy against targets or None)."""
        if idx.ndim != 2:
            raise ValueError(f"GPT: expected token ids of shape (B, T), got {idx.shape}")
        B, T = idx.shape
        start = 0 if cache is None else cache.length
        if start + T > self.config.block_size:
            raise ValueError(
                f"GPT: sequence of {start + T} tokens is longer than block_size "
                f"{self.config.block_size}"
            )
        if idx.dtype.kind not in "iu":
            raise TypeError(f"GPT: token ids must be integers, got dtype {idx.dtype}")
        tr = self.transformer
        # Positions start:start+T are a slice of wpe's rows: no gather and no range check (which
        # would make the host wait for the GPU).
        x = tr["drop"](tr["wte"](idx) + tr["wpe"].weight[start : start + T])  # (B, T, C)
        for i, block in enumerate(tr["h"]):
            x = block(x, cache, i)
        x = tr["ln_f"](x)
        logits = self.lm_head(x)  # (B, T, V)
        if cache is not None:
            cache.length += T
        loss = None
        if targets is not None:
            V = self.config.vocab_size
            loss = F.cross_entropy(logits.reshape(B * T, V), targets.reshape(B * T))
        return logits, loss

    def generate(
        self,
        idx: Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        use_cache: bool = True,
    ) -> Tensor:
        """Append max_new_tokens sampled tokens to idx (B, T); temperature 0 picks the argmax.

        With the cache the logits equal full recomputation while the sequence fits in block_size;
        past it, the context slides (the cache is refilled from the last block_size // 2 tokens).
        """
        if idx.ndim != 2:
            raise ValueError(f"GPT.generate: expected token ids of shape (B, T), got {idx.shape}")
        if idx.shape[1] > self.config.block_size:
            raise ValueError(
                f"GPT.generate: the prompt has {idx.shape[1]} tokens, more than the context "
                f"(block_size {self.config.block_size}); shorten it"
            )
        if idx.shape[1] == 0:
            raise ValueError("GPT.generate: the prompt must have at least one token")
        if temperature < 0:
            raise ValueError(f"GPT.generate: temperature must be >= 0, got {temperature}")
        if top_k is not None and top_k < 1:
            raise ValueError(f"GPT.generate: top_k must be >= 1, got {top_k}")
        # the token sequence and the sampling stay raw arrays (no graph: nothing here is trained)
        be = idx.backend
        xp = be.xp
        block = self.config.block_size
        seq = idx.array.astype("int64")
        with gnn.no_grad():
            cache = KVCache(self.config.n_layer, block) if use_cache else None
            logits = self(idx, cache=cache)[0][:, -1]  # (B, V)
            for step in range(max_new_tokens):
                nxt = _sample(be, logits.array, temperature, top_k)  # (B, 1)
                seq = xp.concatenate([seq, nxt], axis=1)
                if step == max_new_tokens - 1:
                    break
                if cache is None:  # recompute over the last block_size tokens
                    logits = self(Tensor.wrap(seq[:, -block:], be))[0][:, -1]
                elif cache.length < block:  # one new position through the network
                    logits = self(Tensor.wrap(nxt, be), cache=cache)[0][:, -1]
                else:
                    # The context is full: refill the cache from the last half block, so the
                    # cost per token stays O(1) positions amortised (not a full block each).
                    cache = KVCache(self.config.n_layer, block)
                    tail = Tensor.wrap(seq[:, -max(block // 2, 1) :], be)
                    logits = self(tail, cache=cache)[0][:, -1]
        return Tensor.wrap(seq, be)


def _sample(be: Any, logits: Any, temperature: float, top_k: int | None) -> Any:
    """One token id per row from logits (B, V): greedy, or softmax(logits / T) within the top k."""
    xp = be.xp
    z = logits.astype("float64")
    if temperature == 0:
        return z.argmax(axis=-1)[:, None].astype("int64")
    z = z / temperature
    if top_k is not None and top_k < z.shape[-1]:
        kth = xp.sort(z, axis=-1)[:, -top_k][:, None]
        z = xp.where(z < kth, -xp.inf, z)
    z = z - z.max(axis=-1, keepdims=True)
    p = xp.exp(z)
    c = xp.cumsum(p, axis=-1)
    u = be.rand((z.shape[0], 1), xp.float64) * c[:, -1:]
    choice = (c <= u).sum(axis=-1)
    return xp.minimum(choice, z.shape[-1] - 1)[:, None].astype("int64")
