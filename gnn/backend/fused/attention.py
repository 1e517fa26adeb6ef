"""Scaled dot-product attention, fused: softmax(q k^T * scale + mask) v and its gradients.

The reference below is the op's one Python formula, masks and dropout included: it keeps the
attention weights for its backward. The kernels are kernels/attention.cu (float32, and float16
with float32 math): one forward launch that keeps no scores matrix and saves each query row's
logsumexp, and two backward launches (dq, then dk and dv) that recompute the weights from it, as
`reference_grads` does. They apply to float32 or float16 q, k, v of one batch shape, head dim
<= 128, no mask or the causal one (query i sees keys 0..i), no dropout; everything else runs the
reference, on either device. Set GNN_FUSED_ATTENTION=0 to turn the kernels off."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from gnn.backend.base import KernelBackend
from gnn.backend.fused import Fused

__all__ = [
    "MAX_DIM",
    "Spec",
    "Saved",
    "backward",
    "causal_mask",
    "cuda",
    "cuda_backward",
    "enabled",
    "forward",
    "reference",
    "reference_backward",
    "reference_delta",
    "reference_grads",
]

MAX_DIM = 128  # head dims the kernels take (four per lane of a warp)
KERNEL_DTYPES = {np.dtype(np.float32): "f32", np.dtype(np.float16): "f16"}  # float32 math inside
MAX_WARPS = 8  # the kernels' __launch_bounds__(256)


@dataclass(frozen=True)
class Spec:
    """The op's settings: the factor on q k^T and whether query i sees only keys 0..i."""

    scale: float
    causal: bool


@dataclass(frozen=True)
class Saved:
    """What the forward keeps for the backward besides q, k, v: the output and row logsumexps,
    from which the kernels recompute the weights; the reference keeps what its backward reads."""

    out: Any  # (..., L, D): the inputs' dtype from the kernels, float32 at least from the reference
    lse: Any  # (..., L): float32 from the kernels, the reference's float dtype from it
    operands: Any = None  # the reference's q, k^T * scale, v as its products used them
    weights: Any = None  # the reference's P and P after dropout, (..., L, S)
    keep: Any = None  # dropout's kept elements, scaled by 1 / (1 - p), or None


def enabled() -> bool:
    """False when GNN_FUSED_ATTENTION=0 asks for the unfused composite on the GPU too."""
    return os.environ.get("GNN_FUSED_ATTENTION", "1") != "0"


def causal_mask(xp: Any, L: int, S: int, acc: Any) -> Any:
    """The additive (L, S) causal mask: 0 where key j <= query i (top-left aligned), else -inf."""
    return xp.where(xp.tri(L, S, dtype=bool), acc(0), acc(-np.inf)).astype(acc, copy=False)


def reference(
    xp: Any, q: Any, k: Any, v: Any, spec: Spec, mask: Any = None, keep: Any = None
) -> Saved:
    """out = (softmax(q k^T * scale + mask) * keep) v and lse = log(sum(exp(scores))) per row.

    mask: additive, broadcast to the scores (the causal one is made here when spec.causal and
    none is given); keep: None, or a function that makes dropout's scaled keep mask for the
    scores' shape (called once the scores are made, which gives that shape).
    """
    acc = np.float64 if q.dtype == np.float64 else np.float32  # float16 is widened
    # A GPU's batched matmul (cuBLAS through the array module) copies every operand that is not
    # C-contiguous, in every product: there q, k^T and v are made contiguous once here and kept
    # for the backward, which then works transposed and copies one array (g^T) instead of
    # seven. NumPy's BLAS takes the strided views as they are, so the CPU keeps them. k^T is
    # copied with the scale folded in (one pass over (S, E) instead of one over the scores).
    if xp is not np:
        qa, va = xp.ascontiguousarray(q, dtype=acc), xp.ascontiguousarray(v, dtype=acc)
    else:
        qa, va = q.astype(acc, copy=False), v.astype(acc, copy=False)
    kt = xp.swapaxes(k, -1, -2)
    kt = xp.multiply(kt, acc(spec.scale), out=xp.empty(kt.shape, dtype=acc))
    s = qa @ kt  # (..., L, S), scaled
    if mask is None and spec.causal:
        mask = causal_mask(xp, s.shape[-2], s.shape[-1], acc)
    if mask is not None:
        if np.broadcast_shapes(s.shape, mask.shape) == s.shape:
            s += mask
        else:  # the mask adds batch dims the scores do not have
            s = s + mask
    m = s.max(axis=-1, keepdims=True)
    guard = mask is not None and not spec.causal
    if guard:
        # A row with every key masked has max -inf: it gives zero weights (and output), as
        # PyTorch's scaled_dot_product_attention does, rather than NaN (the row's exp() sum is
        # 0 below, and 0 / tiny is 0). A causal row always sees key 0.
        m = xp.maximum(m, xp.finfo(acc).min)
    s -= m
    xp.exp(s, out=s)
    total = s.sum(axis=-1, keepdims=True)
    if guard:
        total = xp.maximum(total, xp.finfo(acc).tiny)  # an unmasked row's sum is >= 1
    s /= total
    if keep is not None:
        keep = keep(s.shape)
    pd = s if keep is None else s * keep  # the weights, and those after dropout
    lse = m[..., 0] + xp.log(total[..., 0])
    return Saved(pd @ va, lse, (qa, kt, va), (s, pd), keep)


def reference_backward(
    xp: Any,
    q: Any,
    k: Any,
    v: Any,
    saved: Saved,
    gout: Any,
    spec: Spec,
    into: tuple | None = None,
    needs: tuple = (True, True, True),
) -> tuple:
    """(gq, gk, gv), float32 at least, None where `needs` says so; `into`: three views to fill.

    After the kernels' forward (no weights saved) the reference forward runs again first."""
    if saved.weights is None:
        saved = reference(xp, q, k, v, spec)
    g = gout.astype(saved.out.dtype, copy=False)
    delta = reference_delta(saved.out, g)[..., None]
    grads = _grads(xp, saved, delta, g, spec.scale, needs)
    for part, gr in zip(into or (), grads):
        part[...] = gr
    return grads


def reference_delta(out: Any, gout: Any) -> Any:
    """delta = rowsum(gout * out), which equals rowsum(dP * P) (dP = gout v^T, P the weights)."""
    return (gout * out).sum(axis=-1)


def reference_grads(
    xp: Any, q: Any, k: Any, v: Any, lse: Any, delta: Any, gout: Any, spec: Spec
) -> tuple[Any, Any, Any]:
    """(gq, gk, gv) as the kernels make them: the weights recomputed from the row logsumexps."""
    kt = xp.swapaxes(k, -1, -2) * q.dtype.type(spec.scale)
    s = q @ kt
    if spec.causal:
        s += causal_mask(xp, s.shape[-2], s.shape[-1], s.dtype.type)
    p = xp.exp(s - lse[..., None])  # masked keys: exp(-inf) = 0
    saved = Saved(None, lse, (q, kt, v), (p, p))
    return _grads(xp, saved, delta[..., None], gout, spec.scale, (True, True, True))


def _grads(xp: Any, saved: Saved, delta: Any, g: Any, scale: float, needs: tuple) -> tuple:
    """(gq, gk, gv) from the weights: dS = P * (dP - delta), where the row sums delta =
    rowsum(dP * P) = rowsum(g * out) come from (L, E) arrays, not (L, S) ones.

    On a GPU (where the forward made its operands contiguous) the (L, S) arrays are used
    transposed (dS^T from P^T and dP^T = v g^T), so that every product's operands are
    C-contiguous and g^T is the one array copied."""
    (q, kt, v), (p, pd), keep, t = saved.operands, saved.weights, saved.keep, xp is not np
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
            gk *= gk.dtype.type(scale)
    return gq, gk, gv


def _t(a: Any) -> Any:
    """a with its last two dims swapped (a view)."""
    return a.swapaxes(-1, -2)


# ---- the kernels ---------------------------------------------------------------------------------


def applies(q: Any, k: Any, v: Any) -> bool:
    """True where the kernels take these operands (float32 or float16 alike, one batch shape,
    head dim <= 128)."""
    if q.dtype not in KERNEL_DTYPES or not (k.dtype == q.dtype and v.dtype == q.dtype):
        return False
    if q.ndim < 2:
        return False
    if k.shape != v.shape or q.shape[:-2] != k.shape[:-2] or q.shape[-1] != k.shape[-1]:
        return False
    return 1 <= q.shape[-1] <= MAX_DIM and q.shape[-2] >= 1 and k.shape[-2] >= 1


def _as4d(a: Any) -> Any:
    """a as a (batch, heads, rows, dim) view (a copy only where leading dims cannot merge)."""
    if a.ndim == 4:
        return a
    if a.ndim < 4:
        return a.reshape((1,) * (4 - a.ndim) + a.shape)
    return a.reshape((-1,) + a.shape[-3:])


def _view_args(xp: Any, a: Any, written: bool = False) -> tuple:
    """(buffer, offset, batch stride, head stride, row stride) of a 4-D view, in elements.

    The buffer is the C-contiguous array the view lives in (a copy of the view where it has none,
    or where its dims are not unit-stride), so packed projections are read in place."""
    root = a
    while root.base is not None:
        root = root.base
    item = a.itemsize
    ok = (
        root.flags.c_contiguous
        and root.dtype == a.dtype
        and (a.shape[-1] == 1 or a.strides[-1] == item)
    )
    if ok:
        off, rem = divmod(a.data.ptr - root.data.ptr, item)
        ok = rem == 0 and 0 <= off < root.size and all(s % item == 0 for s in a.strides)
    if not ok:
        if written:  # a copy would take the kernel's results away
            raise ValueError("attention kernels: an output must be a unit-stride view")
        a = root = xp.ascontiguousarray(a)
        off = 0
    sb, sh, sr = (s // item for s in a.strides[:3])
    return (root, np.int64(off), np.int64(sb), np.int64(sh), np.int64(sr))


def _launch_shape(rows: int, groups: int) -> tuple[int, int]:
    """(blocks, threads): a warp per row, two warps a block for short sequences, else four."""
    warps = 2 if rows <= 64 else 4
    blocks = groups * -(-rows // warps)
    return max(1, min(blocks, 2**31 - 1)), 32 * warps


def cuda(
    be: KernelBackend, q: Any, k: Any, v: Any, spec: Spec, mask: Any = None, keep: Any = None
) -> Saved | None:
    """The forward kernel where it applies (no mask but the causal one, no dropout), else None.
    A 4-D output is laid out (B, L, H, D)."""
    if keep is not None or (mask is not None and not spec.causal):
        return None
    if not (enabled() and applies(q, k, v)):
        return None
    xp = be.xp
    with be._cuda_device:
        q4, k4, v4 = _as4d(q), _as4d(k), _as4d(v)
        B, H, L, D = q4.shape
        S = k4.shape[2]
        if q.ndim == 4:  # (B, L, H, D) memory: out.transpose(1, 2).reshape(B, L, H * D) is free
            out4 = xp.empty((B, L, H, D), dtype=q.dtype).transpose(0, 2, 1, 3)
        else:
            out4 = xp.empty((B, H, L, D), dtype=q.dtype)
        lse = xp.empty((B * H, L), dtype=np.float32)
        blocks, threads = _launch_shape(L, B * H)
        args = (*_views(xp, q4, k4, v4), *_views(xp, out4, written=True), lse)
        sfx = KERNEL_DTYPES[q.dtype]
        sizes = _sizes(H, B * H, L, S, D, spec)
        be._launch("attention", f"attention_forward_{sfx}", blocks, threads, (*args, *sizes))
    return Saved(out4.reshape(q.shape[:-1] + (D,)), lse.reshape(q.shape[:-1]))


def _sizes(H: int, BH: int, L: int, S: int, D: int, spec: Spec) -> tuple:
    """The kernels' trailing scalars, typed as their C signatures declare them."""
    counts = tuple(np.int64(n) for n in (H, BH, L, S))
    return (*counts, np.int32(D), np.float32(spec.scale), np.int32(spec.causal))


def _views(xp: Any, *arrays: Any, written: bool = False) -> tuple:
    """The `_view_args` of several 4-D arrays, one after another."""
    return tuple(arg for a in arrays for arg in _view_args(xp, a, written))


def cuda_backward(
    be: KernelBackend,
    q: Any,
    k: Any,
    v: Any,
    saved: Saved,
    gout: Any,
    spec: Spec,
    into: tuple | None = None,
    needs: tuple = (True, True, True),
) -> tuple[Any, Any, Any] | None:
    """(gq, gk, gv) from the two backward kernels (all three, whatever `needs` says) after the
    kernels' forward, else None; `into`: three views to fill."""
    if saved.weights is not None or not (enabled() and applies(q, k, v) and gout.dtype == q.dtype):
        return None
    sfx = KERNEL_DTYPES[q.dtype]
    xp = be.xp
    with be._cuda_device:
        q4, k4, v4 = _as4d(q), _as4d(k), _as4d(v)
        B, H, L, D = q4.shape
        S = k4.shape[2]
        if into is None:
            into = tuple(xp.empty(a.shape, q.dtype) for a in (q, k, v))
        gq4, gk4, gv4 = (_as4d(g) for g in into)
        lse = xp.ascontiguousarray(saved.lse).reshape(B * H, L)
        delta = xp.empty((B * H, L), dtype=np.float32)
        reads = _views(xp, q4, k4, v4)
        g_args = _views(xp, _as4d(gout))
        sizes = _sizes(H, B * H, L, S, D, spec)
        dq = (*_views(xp, _as4d(saved.out)), *g_args, *_views(xp, gq4, written=True))
        dkdv = (*g_args, *_views(xp, gk4, gv4, written=True))
        for name, rows, writes in (("dq", L, dq), ("dkdv", S, dkdv)):
            blocks, threads = _launch_shape(rows, B * H)
            args = (*reads, *writes, lse, delta, *sizes)
            be._launch("attention", f"attention_backward_{name}_{sfx}", blocks, threads, args)
    return into


forward = Fused("attention", reference, cuda)
backward = Fused("attention_backward", reference_backward, cuda_backward)
