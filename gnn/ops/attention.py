"""Scaled dot-product attention as one Function: softmax(q k^T * scale + mask) @ v.

The backward goes through the attention weights in one step (dS = P * (dP - rowsum(dP * P)))
instead of a graph of small ops. Masks follow PyTorch: a boolean mask says which pairs take part
(True = attend), a float mask is added to the scores; both broadcast over batch and heads.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gnn.autograd import Function
from gnn.dtypes import is_floating
from gnn.ops.autocast import cast_inputs
from gnn.ops.registry import register
from gnn.tensor import Tensor


class Attention(Function):
    """out = dropout(softmax(q @ k^T * scale + mask)) @ v, batched over the leading dims."""

    def __init__(self, scale: float, mask: Any, dropout_p: float, sink: list | None) -> None:
        self.scale, self.mask, self.dropout_p = scale, mask, dropout_p
        self.sink = sink  # a list that receives the attention weights when the caller wants them

    def forward(self, q: Any, k: Any, v: Any) -> Any:
        xp = self.be.xp
        # Scores and softmax in float32 at least (float16 inputs are widened).
        acc = np.float64 if q.dtype == np.float64 else np.float32
        qa, ka, va = (t.astype(acc, copy=False) for t in (q, k, v))
        # A GPU's batched matmul (cuBLAS through the array module) copies every operand that is not
        # C-contiguous, in every product: q, k^T and v are copied once here and kept for the
        # backward, which then copies one array (g^T) instead of seven. NumPy's BLAS takes the
        # strided views as they are, so the CPU keeps them.
        self.transposed = xp is not np
        if self.transposed:
            qa, va = xp.ascontiguousarray(qa), xp.ascontiguousarray(va)
            kt = xp.ascontiguousarray(xp.swapaxes(ka, -1, -2))
        else:
            kt = xp.swapaxes(ka, -1, -2)
        s = qa @ kt  # (..., L, S)
        s *= acc(self.scale)
        if self.mask is not None:
            if _broadcast_shape(s.shape, self.mask.shape) == s.shape:
                s += self.mask
            else:  # the mask adds batch dims the scores do not have
                s = s + self.mask
        m = s.max(axis=-1, keepdims=True)
        if self.mask is not None:
            # A row with every key masked has max -inf: it gives zero weights (and output), as
            # PyTorch's scaled_dot_product_attention does, rather than NaN.
            m = xp.where(xp.isneginf(m), 0, m)
        s -= m
        xp.exp(s, out=s)
        total = s.sum(axis=-1, keepdims=True)
        if self.mask is not None:
            total = xp.where(total == 0, 1, total)
        s /= total
        p = s  # (..., L, S) attention weights
        pd = p
        self.keep = None
        if self.dropout_p > 0.0:
            keep = self.be.rand(p.shape, acc) >= self.dropout_p
            self.keep = keep.astype(acc) * acc(1.0 / (1.0 - self.dropout_p))
            pd = p * self.keep
        out = pd @ va
        self.q, self.k, self.kt, self.v, self.p, self.pd = qa, ka, kt, va, p, pd
        self.in_dtypes = (q.dtype, k.dtype, v.dtype)
        if self.sink is not None:
            self.sink.append(pd)
        return out.astype(v.dtype, copy=False)

    def backward(self, gy: Any) -> Any:
        if self.transposed:
            return self._backward_transposed(gy)
        xp = self.be.xp
        q, k, v, p, pd = self.q, self.k, self.v, self.p, self.pd
        g = gy.astype(p.dtype, copy=False)
        gq = gk = gv = None
        if self.needs_input_grad[2]:
            gv = (xp.swapaxes(pd, -1, -2) @ g).astype(self.in_dtypes[2], copy=False)
        if self.needs_input_grad[0] or self.needs_input_grad[1]:
            gp = g @ xp.swapaxes(v, -1, -2)  # (..., L, S)
            if self.keep is not None:
                gp *= self.keep
            # Softmax backward, fused: dS = P * (dP - sum(dP * P, row)), then the scale.
            row = (gp * p).sum(axis=-1, keepdims=True)
            gp -= row
            gp *= p
            gp *= p.dtype.type(self.scale)
            if self.needs_input_grad[0]:
                gq = (gp @ k).astype(self.in_dtypes[0], copy=False)
            if self.needs_input_grad[1]:
                gk = (xp.swapaxes(gp, -1, -2) @ q).astype(self.in_dtypes[1], copy=False)
        return gq, gk, gv  # broadcast batch dims are summed back by the engine

    def _backward_transposed(self, gy: Any) -> Any:
        """The backward on contiguous operands only: the same products, transposed, so that the
        one copy is of g^T (q, k^T and v were made contiguous by the forward)."""
        xp = self.be.xp
        q, kt, v, p, pd = self.q, self.kt, self.v, self.p, self.pd
        gt = xp.ascontiguousarray(xp.swapaxes(gy.astype(p.dtype, copy=False), -1, -2))
        gq = gk = gv = None
        if self.needs_input_grad[2]:
            gv = xp.swapaxes(gt @ pd, -1, -2).astype(self.in_dtypes[2], copy=False)  # pd^T g
        if self.needs_input_grad[0] or self.needs_input_grad[1]:
            gpt = v @ gt  # (..., S, L): dP^T
            pt = xp.swapaxes(p, -1, -2)
            if self.keep is not None:
                gpt *= xp.swapaxes(self.keep, -1, -2)
            # Softmax backward, fused and transposed: dS^T = P^T * (dP^T - colsum(dP^T * P^T)).
            row = (gpt * pt).sum(axis=-2, keepdims=True)
            gpt -= row
            gpt *= pt
            gpt *= p.dtype.type(self.scale)
            if self.needs_input_grad[0]:
                gq = xp.swapaxes(kt @ gpt, -1, -2).astype(self.in_dtypes[0], copy=False)  # dS k
            if self.needs_input_grad[1]:
                gk = (gpt @ q).astype(self.in_dtypes[1], copy=False)  # dS^T q
        return gq, gk, gv


def _broadcast_shape(a: tuple, b: tuple) -> tuple:
    """The shape a and b broadcast to (they are known to be compatible)."""
    n = max(len(a), len(b))
    a = (1,) * (n - len(a)) + tuple(a)
    b = (1,) * (n - len(b)) + tuple(b)
    return tuple(max(x, y) if min(x, y) != 0 else 0 for x, y in zip(a, b))


def _check_mask_shape(mask_shape: tuple, scores_shape: tuple) -> None:
    for m, n in zip(reversed(mask_shape), reversed(scores_shape)):
        if m != n and m != 1 and n != 1:
            raise ValueError(
                f"scaled_dot_product_attention: attn_mask of shape {tuple(mask_shape)} does not "
                f"broadcast to the attention scores' shape {tuple(scores_shape)} (batch..., L, S)"
            )


# Causal masks by (device, L, S, dtype): a transformer's layers all use the same one, and each
# step again; building it is several launches on a GPU. Shared, so read-only (never written).
_CAUSAL_MASKS: dict[tuple, Any] = {}
_CAUSAL_CACHE_SIZE = 16


def _causal_mask(be: Any, L: int, S: int, acc: Any) -> Any:
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


def additive_mask(
    attn_mask: Any, is_causal: bool, q_shape: tuple, k_shape: tuple, like: Tensor
) -> Any:
    """One additive float mask (an array, or None) from a bool / float mask and/or causality."""
    xp = like._be.xp
    acc = np.float64 if like.dtype == np.float64 else np.float32
    L, S = q_shape[-2], k_shape[-2]
    batch = _broadcast_shape(q_shape[:-2], k_shape[:-2])
    if is_causal and attn_mask is not None:
        raise ValueError(
            "scaled_dot_product_attention: pass either attn_mask or is_causal=True, not both "
            "(fold the causal pattern into attn_mask instead)"
        )
    if is_causal:
        return _causal_mask(like._be, L, S, acc)
    if attn_mask is None:
        return None
    if isinstance(attn_mask, Tensor):
        if attn_mask._be is not like._be:
            raise RuntimeError(
                f"scaled_dot_product_attention: attn_mask is on {attn_mask.device}, "
                f"the queries on {like.device}"
            )
        m = attn_mask.array
    else:
        m = like._be.asarray(attn_mask)
    _check_mask_shape(tuple(m.shape), batch + (L, S))
    if m.dtype == bool:
        return xp.where(m, acc(0), acc(-np.inf)).astype(acc)
    if m.dtype.kind != "f":
        raise TypeError(
            f"scaled_dot_product_attention: attn_mask must be bool or floating, got {m.dtype}"
        )
    return m.astype(acc, copy=False)


def attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    mask: Any = None,
    dropout_p: float = 0.0,
    scale: float | None = None,
    need_weights: bool = False,
) -> tuple[Tensor, Any]:
    """(output, weights array or None) with an already-additive mask; used by the layers."""
    if scale is None:
        scale = 1.0 / math.sqrt(query.shape[-1]) if query.shape[-1] else 1.0
    sink: list | None = [] if need_weights else None
    query, key, value = cast_inputs("scaled_dot_product_attention", query, key, value)
    out = Attention.apply(
        query, key, value, scale=float(scale), mask=mask, dropout_p=float(dropout_p), sink=sink
    )
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
        _check_batch(query.shape[:-2], key.shape[:-2])
        _check_batch(query.shape[:-2], value.shape[:-2])
        _check_batch(key.shape[:-2], value.shape[:-2])
    except ValueError:
        raise ValueError(
            f"{op}: batch dims of query {query.shape}, key {key.shape} and value {value.shape} "
            "do not broadcast"
        ) from None


def _check_batch(a: tuple, b: tuple) -> None:
    for m, n in zip(reversed(a), reversed(b)):
        if m != n and m != 1 and n != 1:
            raise ValueError


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
    mask = additive_mask(attn_mask, is_causal, query.shape, key.shape, query)
    out, _ = attention(query, key, value, mask, dropout_p, scale)
    return out
