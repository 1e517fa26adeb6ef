"""Scaled dot-product attention as one Function: softmax(q k^T * scale + mask) @ v.

The formula, forward and backward, is gnn/backend/fused/attention.py's (its reference, and its
kernels on a GPU); here are the public functions, their checks and masks, and the Function. Masks
follow PyTorch: a boolean mask says which pairs take part (True = attend), a float mask is added
to the scores; both broadcast over batch and heads."""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from gnn import autograd
from gnn.backend.fused import attention as fused_attention
from gnn.dtypes import is_floating
from gnn.ops._util import Configured
from gnn.ops.autocast import cast_inputs
from gnn.ops.dropout import keep_mask
from gnn.ops.registry import register
from gnn.ops.shape import GetItem
from gnn.tensor import Tensor


class Attention(Configured):
    """out = dropout(softmax(q @ k^T * scale + mask)) @ v, batched over the leading dims.

    Inputs are q, k, v, or one packed tensor whose [0], [1], [2] are q, k, v (the self-attention
    projections, see `_packed`): then the backward writes the three gradients into one buffer
    laid out as that tensor, instead of three zero-filled copies added together. The math is
    gnn/backend/fused/attention.py: its reference, and on a GPU its kernels where they apply
    (float32 / float16, no mask or the causal one, no dropout, weights not asked for).
    """

    spec: fused_attention.Spec  # scale and causal (then forward sets the causal mask)
    mask: Any
    dropout_p: float
    sink: list | None  # a list that receives the attention weights when the caller wants them

    def forward(self, *xs: Any) -> Any:
        self.qkv = xs[0] if len(xs) == 1 else None  # the packed tensor, or None
        self.xs = xs if self.qkv is None else tuple(self.qkv)  # (q, k, v)
        q, k, v = self.xs
        acc = np.float64 if q.dtype == np.float64 else np.float32
        if self.spec.causal:  # one cached mask for every layer and step (the kernels need none)
            self.mask = causal_mask(self.be, q.shape[-2], k.shape[-2], acc)
        p = self.dropout_p  # dropout: the reference makes the mask once the scores give its shape
        keep = functools.partial(keep_mask, self.be, dtype=acc, p=p) if p > 0.0 else None
        if self.sink is None:
            self.saved = fused_attention.forward(self.be, q, k, v, self.spec, self.mask, keep)
        else:  # the weights are asked for: the reference, which makes them
            self.saved = fused_attention.reference(self.be.xp, q, k, v, self.spec, self.mask, keep)
            self.sink.append(self.saved.weights[1])
        return self.saved.out.astype(v.dtype, copy=False)

    def backward(self, gy: Any) -> Any:
        needs = (True, True, True) if self.qkv is not None else self.needs_input_grad
        into = None if self.qkv is None else _like(self.be.xp, self.qkv)
        parts = None if into is None else (into[0], into[1], into[2])
        grads = fused_attention.backward(self.be, *self.xs, self.saved, gy, self.spec, parts, needs)
        if into is not None:
            return into
        grads = zip(grads, needs, self.xs)
        return tuple(g.astype(x.dtype, copy=False) if need else None for g, need, x in grads)


def _like(xp: Any, a: Any) -> Any:
    """An empty array of a's shape and dtype whose dims are laid out in memory as a's are."""
    order = sorted(range(a.ndim), key=lambda i: -a.strides[i])  # outermost first (stable)
    buf = xp.empty(tuple(a.shape[i] for i in order), dtype=a.dtype)
    return buf.transpose(tuple(order.index(i) for i in range(a.ndim)))


def _packed(q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, ...]:
    """Attention's inputs: (t,) when q, k, v are t[0], t[1], t[2] (one projection, split), else
    (q, k, v).

    Attention then takes t itself, so its backward writes one gradient buffer: on a GPU that is
    3 launches instead of 8. Not on the CPU, where the strided copies into a fresh buffer measured
    slower than the engine adding three gradients (GPT-2-sized heads, NumPy, untuned malloc), nor
    while an exporter traces the graph (autograd.on_apply), which wants the ops as written."""
    fns = (q._creator, k._creator, v._creator)
    if q.backend.name != "cuda" or autograd.on_apply is not None:
        return q, k, v
    src = fns[0].inputs[0] if isinstance(fns[0], GetItem) else None
    for i, f in enumerate(fns):
        if not isinstance(f, GetItem) or f.index != i or f.inputs[0] is not src or f.advanced:
            return q, k, v
    return (src,) if src is not None and src.shape[0] == 3 and q.dtype == src.dtype else (q, k, v)


@functools.lru_cache(maxsize=16)
def causal_mask(be: Any, L: int, S: int, acc: Any) -> Any:
    """The additive (L, S) causal mask on be's device: 0 where key j <= query i, else -inf.

    Cached: a transformer's layers all use the same one, and each step again, and building it is
    several launches on a GPU. Shared, so read-only (never written)."""
    mask = fused_attention.causal_mask(be.xp, L, S, acc)
    if isinstance(mask, np.ndarray):
        mask.flags.writeable = False
    return mask


def to_additive(mask: Any, like: Tensor, acc: Any, what: str, true_attends: bool) -> Any:
    """A bool or float mask (a Tensor on like's device, or array-like) as an additive `acc` array
    on like's device: a bool mask's masked-out keys -inf. Used by sdpa and MultiheadAttention."""
    be = like.backend
    if isinstance(mask, Tensor) and mask.backend is not be:
        raise RuntimeError(f"{what} is on {mask.device}, the inputs on {like.device}")
    m = mask.array if isinstance(mask, Tensor) else be.asarray(mask)
    if m.dtype == bool:
        keep, drop = (acc(0), acc(-np.inf)) if true_attends else (acc(-np.inf), acc(0))
        return be.xp.where(m, keep, drop).astype(acc)
    if m.dtype.kind != "f":
        raise TypeError(f"{what} must be bool or floating, got {m.dtype}")
    return m.astype(acc, copy=False)


def attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    mask: Any = None,
    dropout_p: float = 0.0,
    scale: float | None = None,
    need_weights: bool = False,
    causal: bool = False,
) -> tuple[Tensor, Any]:
    """(output, weights array or None) with an already-additive mask; used by the layers.

    causal=True (with mask None) applies the causal mask (query i sees keys 0..i)."""
    if scale is None:
        scale = 1.0 / math.sqrt(query.shape[-1]) if query.shape[-1] else 1.0
    sink: list | None = [] if need_weights else None
    query, key, value = cast_inputs("scaled_dot_product_attention", query, key, value)
    if causal and mask is not None:
        raise ValueError(
            "scaled_dot_product_attention: pass either attn_mask or is_causal=True, not both "
            "(fold the causal pattern into attn_mask instead)"
        )
    spec = fused_attention.Spec(float(scale), causal)
    params = dict(spec=spec, mask=mask, dropout_p=float(dropout_p), sink=sink)
    out = Attention.apply(*_packed(query, key, value), **params)
    return out, (sink[0] if sink else None)


def _sdpa_mask(query: Tensor, key: Tensor, value: Tensor, attn_mask: Any, dropout_p: float) -> Any:
    """scaled_dot_product_attention's checks; then attn_mask (a bool or float Tensor or array) as
    an additive float array on query's device that broadcasts to the scores, or None."""
    op = "scaled_dot_product_attention"
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be a Tensor, got {type(t).__name__}")
        if t.ndim < 2:
            raise ValueError(f"{op}: {name} needs at least 2 dims (..., L, E), got {t.shape}")
        if not is_floating(t.dtype):
            raise TypeError(f"{op}: {name} must be floating, got {t.dtype}")
    if query.shape[-1] != key.shape[-1]:
        raise ValueError(
            f"{op}: query {query.shape} and key {key.shape} differ in the last (embedding) dim"
        )
    if key.shape[-2] != value.shape[-2]:
        raise ValueError(
            f"{op}: key {key.shape} and value {value.shape} differ in the sequence dim (-2)"
        )
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"{op}: dropout_p must be in [0, 1), got {dropout_p}")
    try:
        batch = np.broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2])
    except ValueError:
        raise ValueError(
            f"{op}: batch dims of query {query.shape}, key {key.shape} and value {value.shape} "
            "do not broadcast"
        ) from None
    if attn_mask is None:
        return None
    acc = np.float64 if query.dtype == np.float64 else np.float32
    m = to_additive(attn_mask, query, acc, f"{op}: attn_mask", True)
    scores = batch + (query.shape[-2], key.shape[-2])
    try:
        np.broadcast_shapes(tuple(m.shape), scores)
    except ValueError:
        raise ValueError(
            f"{op}: attn_mask of shape {tuple(m.shape)} does not broadcast to the attention "
            f"scores' shape {scores} (batch..., L, S)"
        ) from None
    return m


@register()
def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask: Any = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
) -> Tensor:
    """softmax(query @ key^T * scale + mask) @ value, as in PyTorch (bool mask: True = attend)."""
    mask = _sdpa_mask(query, key, value, attn_mask, dropout_p)
    return attention(query, key, value, mask, dropout_p, scale, causal=bool(is_causal))[0]
