"""Scaled dot-product attention as one Function: softmax(q k^T * scale + mask) @ v.

The backward goes through the attention weights in one step (dS = P * (dP - rowsum(dP * P)))
instead of a graph of small ops. Masks follow PyTorch: a boolean mask says which pairs take part
(True = attend), a float mask is added to the scores; both broadcast over batch and heads.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gnn import autograd
from gnn.autograd import Function
from gnn.backend.fused import attention as fused_attention
from gnn.dtypes import is_floating
from gnn.ops.autocast import cast_inputs
from gnn.ops.registry import register
from gnn.ops.shape import GetItem
from gnn.tensor import Tensor


class Attention(Function):
    """out = dropout(softmax(q @ k^T * scale + mask)) @ v, batched over the leading dims.

    Inputs are q, k, v, or one packed tensor whose [0], [1], [2] are q, k, v (the self-attention
    projections, see `_packed`): then the backward writes the three gradients into one buffer
    laid out as that tensor, instead of three zero-filled copies added together. On a GPU,
    float32 / float16 with no mask or the causal one and no dropout runs the fused kernels
    (gnn/backend/fused/attention.py).
    """

    def __init__(
        self, scale: float, mask: Any, dropout_p: float, sink: list | None, causal: bool = False
    ) -> None:
        self.scale, self.mask, self.dropout_p = scale, mask, dropout_p
        self.sink = sink  # a list that receives the attention weights when the caller wants them
        self.causal = causal  # mask is the causal one: every row sees key 0, no row is all masked
        self.spec = fused_attention.Spec(scale, causal)  # the fused kernels' settings

    def forward(self, *xs: Any) -> Any:
        self.packed = len(xs) == 1
        if self.packed:
            qkv = xs[0]
            self.layout = (qkv.shape, qkv.strides, qkv.dtype)
            xs = (qkv[0], qkv[1], qkv[2])
        self.in_dtypes = tuple(x.dtype for x in xs)
        self.fused = None
        if self.be.name == "cuda" and self.dropout_p == 0.0 and self.sink is None:
            if self.mask is None or self.causal:
                self.fused = fused_attention.cuda(self.be, xs[0], xs[1], xs[2], self.spec)
        if self.fused is not None:
            self.q, self.k, self.v = xs
            return self.fused.out
        return self._forward(*xs)

    def _forward(self, q: Any, k: Any, v: Any) -> Any:
        """The composite: scores, softmax and the product with v as array operations."""
        xp = self.be.xp
        # Scores and softmax in float32 at least (float16 inputs are widened).
        acc = np.float64 if q.dtype == np.float64 else np.float32
        # A GPU's batched matmul (cuBLAS through the array module) copies every operand that is not
        # C-contiguous, in every product: there q, k^T and v are made contiguous once here and kept
        # for the backward, which then works transposed and copies one array (g^T) instead of
        # seven. NumPy's BLAS takes the strided views as they are, so the CPU keeps them. k^T is
        # copied with the scale folded in (one pass over (S, E) instead of one over the scores).
        self.transposed = xp is not np
        if self.transposed:
            qa, va = xp.ascontiguousarray(q, dtype=acc), xp.ascontiguousarray(v, dtype=acc)
        else:
            qa, va = q.astype(acc, copy=False), v.astype(acc, copy=False)
        kt = xp.swapaxes(k, -1, -2)
        kt = xp.multiply(kt, acc(self.scale), out=xp.empty(kt.shape, dtype=acc))
        s = qa @ kt  # (..., L, S), scaled
        if self.mask is not None:
            if np.broadcast_shapes(s.shape, self.mask.shape) == s.shape:
                s += self.mask
            else:  # the mask adds batch dims the scores do not have
                s = s + self.mask
        m = s.max(axis=-1, keepdims=True)
        guard = self.mask is not None and not self.causal
        if guard:
            # A row with every key masked has max -inf: it gives zero weights (and output), as
            # PyTorch's scaled_dot_product_attention does, rather than NaN (the row's exp() sum is
            # 0 below, and 0 / tiny is 0).
            m = xp.maximum(m, xp.finfo(acc).min)
        s -= m
        xp.exp(s, out=s)
        total = s.sum(axis=-1, keepdims=True)
        if guard:
            total = xp.maximum(total, xp.finfo(acc).tiny)  # an unmasked row's sum is >= 1
        s /= total
        p = pd = s  # (..., L, S) attention weights, and those after dropout
        self.keep = None
        if self.dropout_p > 0.0:
            keep = self.be.rand(p.shape, acc) >= self.dropout_p
            self.keep = keep.astype(acc) * acc(1.0 / (1.0 - self.dropout_p))
            pd = p * self.keep
        out = pd @ va
        self.q, self.kt, self.v, self.p, self.pd, self.out = qa, kt, va, p, pd, out
        if self.sink is not None:
            self.sink.append(pd)
        return out.astype(v.dtype, copy=False)

    def backward(self, gy: Any) -> Any:
        needs = (True, True, True) if self.packed else self.needs_input_grad
        into = _like(self.be.xp, *self.layout) if self.packed else None
        parts = None if into is None else (into[0], into[1], into[2])
        grads = None
        if self.fused is not None:
            grads = fused_attention.cuda_backward(
                self.be, self.q, self.k, self.v, self.fused, gy, self.spec, parts
            )
            if grads is None:  # gy is not float32: the composite, its intermediates made now
                self._forward(self.q, self.k, self.v)
        if grads is None:
            grads = self._backward(gy, needs)
            for part, g in zip(parts or (), grads):
                part[...] = g
        if self.packed:
            return into
        return tuple(g if need else None for g, need in zip(grads, needs))

    def _backward(self, gy: Any, needs: tuple) -> Any:
        """The composite's gradients: dS = P * (dP - delta), where the row sums delta =
        rowsum(dP * P) = rowsum(g * out) come from (L, E) arrays, not (L, S) ones.

        Where the forward made its operands contiguous (a GPU), the (L, S) arrays are used
        transposed (dS^T from P^T and dP^T = v g^T), so that every product's operands are
        C-contiguous and g^T is the one array copied."""
        xp, t = self.be.xp, self.transposed
        q, kt, v, p, pd, keep = self.q, self.kt, self.v, self.p, self.pd, self.keep
        g = gy.astype(p.dtype, copy=False)
        delta = (g * self.out).sum(axis=-1, keepdims=True)  # (..., L, 1)
        if t:
            g, p, delta = xp.ascontiguousarray(_t(g)), _t(p), _t(delta)
            keep = None if keep is None else _t(keep)
        gq = gk = gv = None
        if needs[2]:
            gv = _t(g @ pd) if t else _t(pd) @ g  # pd^T g
        if needs[0] or needs[1]:
            ds = v @ g if t else g @ _t(v)  # dP (or dP^T), then dS
            if keep is not None:
                ds *= keep
            ds -= delta
            ds *= p
            if needs[0]:  # dS k * scale: k^T holds the scale already
                gq = _t(kt @ ds) if t else ds @ _t(kt)
            if needs[1]:
                gk = ds @ q if t else _t(ds) @ q  # dS^T q * scale
                gk *= gk.dtype.type(self.scale)
        grads = zip((gq, gk, gv), self.in_dtypes)
        return tuple(None if gr is None else gr.astype(dt, copy=False) for gr, dt in grads)


def _t(a: Any) -> Any:
    """a with its last two dims swapped (a view)."""
    return a.swapaxes(-1, -2)


def _like(xp: Any, shape: tuple, strides: tuple, dtype: Any) -> Any:
    """An empty array of `shape` whose dims are laid out in memory in the order `strides` give."""
    order = sorted(range(len(shape)), key=lambda i: -strides[i])  # outermost first (stable)
    buf = xp.empty(tuple(shape[i] for i in order), dtype=dtype)
    return buf.transpose(tuple(order.index(i) for i in range(len(shape))))


def _packed(q: Tensor, k: Tensor, v: Tensor) -> Tensor | None:
    """The tensor t when q, k, v are t[0], t[1], t[2] (one projection, split), else None.

    Attention then takes t itself, so its backward writes one gradient buffer: on a GPU that is
    3 launches instead of 8. Not on the CPU, where the strided copies into a fresh buffer measured
    slower than the engine adding three gradients (GPT-2-sized heads, NumPy, untuned malloc), nor
    while an exporter traces the graph (autograd.on_apply), which wants the ops as written."""
    fns = (q._creator, k._creator, v._creator)
    if q.backend.name != "cuda" or autograd.on_apply is not None:
        return None
    if not all(isinstance(f, GetItem) for f in fns):
        return None
    src = fns[0].inputs[0]  # type: ignore[union-attr]
    for i, f in enumerate(fns):
        if f.index != i or f.inputs[0] is not src or f.advanced:  # type: ignore[union-attr]
            return None
    return src if src.shape[0] == 3 and q.dtype == src.dtype else None


# Causal masks by (device, L, S, dtype): a transformer's layers all use the same one, and each
# step again; building it is several launches on a GPU. Shared, so read-only (never written).
_CAUSAL_MASKS: dict[tuple, Any] = {}
_CAUSAL_CACHE_SIZE = 16


def causal_mask(be: Any, L: int, S: int, acc: Any) -> Any:
    """The additive (L, S) causal mask on be's device: 0 where key j <= query i, else -inf."""
    key = (be.device, L, S, np.dtype(acc))
    mask = _CAUSAL_MASKS.get(key)
    if mask is None:
        xp = be.xp
        keep = xp.tril(xp.ones((L, S), dtype=bool))  # query i sees keys 0..i (top-left aligned)
        mask = xp.where(keep, acc(0), acc(-np.inf)).astype(acc)
        if isinstance(mask, np.ndarray):
            mask.flags.writeable = False
        if len(_CAUSAL_MASKS) >= _CAUSAL_CACHE_SIZE:
            _CAUSAL_MASKS.clear()  # many distinct lengths: start afresh
        _CAUSAL_MASKS[key] = mask
    return mask


def to_additive(be: Any, m: Any, acc: Any, what: str, true_attends: bool) -> Any:
    """A bool or float mask array as an additive `acc` one: a bool mask's masked-out keys -inf."""
    if m.dtype == bool:
        xp = be.xp
        keep, drop = (acc(0), acc(-np.inf)) if true_attends else (acc(-np.inf), acc(0))
        return xp.where(m, keep, drop).astype(acc)
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
    if causal:
        if mask is not None:
            raise ValueError("attention: pass either a mask or causal=True, not both")
        acc = np.float64 if query.dtype == np.float64 else np.float32
        mask = causal_mask(query.backend, query.shape[-2], key.shape[-2], acc)
    packed = _packed(query, key, value)
    inputs = (packed,) if packed is not None else (query, key, value)
    params = dict(mask=mask, dropout_p=float(dropout_p), sink=sink, causal=causal)
    out = Attention.apply(*inputs, scale=float(scale), **params)
    return out, (sink[0] if sink else None)


def _check_qkv(query: Tensor, key: Tensor, value: Tensor) -> None:
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
    try:
        np.broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2])
    except ValueError:
        raise ValueError(
            f"{op}: batch dims of query {query.shape}, key {key.shape} and value {value.shape} "
            "do not broadcast"
        ) from None


def _sdpa_mask(attn_mask: Any, query: Tensor, key: Tensor) -> Any:
    """attn_mask (a bool or float Tensor or array) as an additive float array on query's device."""
    be, op = query.backend, "scaled_dot_product_attention"
    if isinstance(attn_mask, Tensor):
        if attn_mask.backend is not be:
            raise RuntimeError(
                f"{op}: attn_mask is on {attn_mask.device}, the queries on {query.device}"
            )
        m = attn_mask.array
    else:
        m = be.asarray(attn_mask)
    L, S = query.shape[-2], key.shape[-2]
    scores = np.broadcast_shapes(query.shape[:-2], key.shape[:-2]) + (L, S)
    try:
        np.broadcast_shapes(tuple(m.shape), scores)
    except ValueError:
        raise ValueError(
            f"{op}: attn_mask of shape {tuple(m.shape)} does not broadcast to the attention "
            f"scores' shape {scores} (batch..., L, S)"
        ) from None
    acc = np.float64 if query.dtype == np.float64 else np.float32
    return to_additive(be, m, acc, f"{op}: attn_mask", True)


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
    _check_qkv(query, key, value)
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(
            f"scaled_dot_product_attention: dropout_p must be in [0, 1), got {dropout_p}"
        )
    if is_causal and attn_mask is not None:
        raise ValueError(
            "scaled_dot_product_attention: pass either attn_mask or is_causal=True, not both "
            "(fold the causal pattern into attn_mask instead)"
        )
    mask = None if attn_mask is None else _sdpa_mask(attn_mask, query, key)
    out, _ = attention(query, key, value, mask, dropout_p, scale, causal=bool(is_causal))
    return out
