"""Scaled dot-product attention, fused: softmax(q k^T * scale [+ causal mask]) v and its gradients.

The references below are the only Python formula of the fused op; the kernels are
kernels/attention.cu (float32, and float16 with float32 math): one forward launch that keeps no
scores matrix and saves each query row's logsumexp, and two backward launches (dq, then dk and dv)
that recompute the scores from it. The kernels apply to float32 or float16 q, k, v of one batch
shape, head dim <= 128, no mask or the causal one (query i sees keys 0..i); everything else (float
masks, dropout, other dtypes) is the unfused composite's, gnn/ops/attention.py. Set
GNN_FUSED_ATTENTION=0 to turn the kernels off.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from gnn.backend.fused import Fused

__all__ = [
    "MAX_DIM",
    "Spec",
    "Saved",
    "backward",
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
    """What the forward keeps for the backward besides q, k, v: the output and row logsumexps."""

    out: Any  # (..., L, D), the inputs' dtype
    lse: Any  # (..., L) float32 on the kernel path (the reference: the inputs' float dtype)


def enabled() -> bool:
    """False when GNN_FUSED_ATTENTION=0 asks for the unfused composite on the GPU too."""
    return os.environ.get("GNN_FUSED_ATTENTION", "1") != "0"


def _scores(xp: Any, q: Any, k: Any, spec: Spec) -> Any:
    """q k^T * scale, with -inf where the causal mask hides a key."""
    s = (q * q.dtype.type(spec.scale)) @ xp.swapaxes(k, -1, -2)
    if spec.causal:
        L, S = s.shape[-2], s.shape[-1]
        s = xp.where(xp.tri(L, S, dtype=bool), s, s.dtype.type(-np.inf))
    return s


def reference(xp: Any, q: Any, k: Any, v: Any, spec: Spec) -> Saved:
    """out = softmax(scores) v and lse = log(sum(exp(scores))) per query row."""
    s = _scores(xp, q, k, spec)
    m = s.max(axis=-1, keepdims=True)
    lse = m + xp.log(xp.exp(s - m).sum(axis=-1, keepdims=True))
    out = xp.exp(s - lse) @ v
    return Saved(out, lse[..., 0])


def reference_backward(
    xp: Any, q: Any, k: Any, v: Any, saved: Saved, gout: Any, spec: Spec
) -> tuple[Any, Any, Any]:
    """(gq, gk, gv), the weights recomputed from the saved logsumexp."""
    return reference_grads(xp, q, k, v, saved.lse, reference_delta(saved.out, gout), gout, spec)


def reference_delta(out: Any, gout: Any) -> Any:
    """delta = rowsum(gout * out), which equals rowsum(dP * P) (dP = gout v^T, P the weights)."""
    return (gout * out).sum(axis=-1)


def reference_grads(
    xp: Any, q: Any, k: Any, v: Any, lse: Any, delta: Any, gout: Any, spec: Spec
) -> tuple[Any, Any, Any]:
    """(gq, gk, gv) from the row logsumexps and deltas: dS = P (dP - delta) * scale."""
    p = xp.exp(_scores(xp, q, k, spec) - lse[..., None])  # masked keys: exp(-inf) = 0
    ds = p * (gout @ xp.swapaxes(v, -1, -2) - delta[..., None])
    ds *= ds.dtype.type(spec.scale)
    return ds @ k, xp.swapaxes(ds, -1, -2) @ q, xp.swapaxes(p, -1, -2) @ gout


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


def cuda(be: Any, q: Any, k: Any, v: Any, spec: Spec) -> Saved | None:
    """The forward kernel where it applies, else None. A 4-D output is laid out (B, L, H, D)."""
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
        args = (
            *_view_args(xp, q4),
            *_view_args(xp, k4),
            *_view_args(xp, v4),
            *_view_args(xp, out4, True),
            lse,
            *_sizes(H, B * H, L, S, D, spec),
        )
        be._launch(
            "attention", f"attention_forward_{KERNEL_DTYPES[q.dtype]}", blocks, threads, args
        )
    return Saved(out4.reshape(q.shape[:-1] + (D,)), lse.reshape(q.shape[:-1]))


def _sizes(H: int, BH: int, L: int, S: int, D: int, spec: Spec) -> tuple:
    i64 = np.int64
    return (
        i64(H),
        i64(BH),
        i64(L),
        i64(S),
        np.int32(D),
        np.float32(spec.scale),
        np.int32(spec.causal),
    )


def cuda_backward(
    be: Any, q: Any, k: Any, v: Any, saved: Saved, gout: Any, spec: Spec, into: tuple | None = None
) -> tuple[Any, Any, Any] | None:
    """(gq, gk, gv) from the two backward kernels, else None; `into`: three views to fill."""
    if not (enabled() and applies(q, k, v) and gout.dtype == q.dtype):
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
        reads = (*_view_args(xp, q4), *_view_args(xp, k4), *_view_args(xp, v4))
        o_args = _view_args(xp, _as4d(saved.out))
        g_args = _view_args(xp, _as4d(gout))
        sizes = _sizes(H, B * H, L, S, D, spec)
        blocks, threads = _launch_shape(L, B * H)
        args = (*reads, *o_args, *g_args, *_view_args(xp, gq4, True), lse, delta, *sizes)
        be._launch("attention", f"attention_backward_dq_{sfx}", blocks, threads, args)
        blocks, threads = _launch_shape(S, B * H)
        args = (
            *reads,
            *g_args,
            *_view_args(xp, gk4, True),
            *_view_args(xp, gv4, True),
            lse,
            delta,
            *sizes,
        )
        be._launch("attention", f"attention_backward_dkdv_{sfx}", blocks, threads, args)
    return into


forward = Fused("attention", reference, cuda)
backward = Fused("attention_backward", reference_backward, cuda_backward)
