"""Gradient clipping by total norm: total = ||(||g_1||, ..., ||g_k||)||, g *= min(1, max / total).

The reference below is the op's only Python formula (one norm per gradient, then their norm, then
one multiply per gradient: a few launches per tensor on a GPU). The kernels are
kernels/clip_grad_norm.cu (float32, float16) and kernels/clip_grad_norm_bf16.cu: for norm_type 2
and inf, two launches per dtype whatever the number of tensors (partial norms; then the total, the
coefficient and the scaling), reading the tensors through a device table of pointers and sizes,
written on the device once per set of gradient buffers and then cached. Neither path reads the
norm back to the host. `forward(be, grads, spec)` scales the arrays `grads` in place and returns the
total as a 0-d array of their result dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from gnn.backend.base import KernelBackend
from gnn.backend.fused import Fused

__all__ = ["ClipSpec", "coefficient", "forward", "reference", "scale_", "total_norm"]

EPS = 1e-6  # added to the total before dividing, as PyTorch
_TABLE_CACHE_SIZE = 16  # pointer tables kept per backend (sets of gradient buffers)
TABLE_ARGS = 16  # tensors written into the table per clip_norm_table launch


@dataclass(frozen=True)
class ClipSpec:
    """max_norm and the norm's order (any p >= 0, or inf / -inf)."""

    max_norm: float
    norm_type: float = 2.0


def _grad_norm(xp: Any, g: Any, norm_type: float) -> Any:
    """The norm of one gradient array as a 0-d device array (float16 accumulates in float32)."""
    if g.dtype.itemsize < 4:
        g = g.astype(xp.float32)
    flat = g.reshape(-1)
    if norm_type == 2.0:
        return xp.sqrt(xp.vdot(flat, flat))  # one pass, no temporary
    if math.isinf(norm_type):
        if flat.size == 0:
            return xp.zeros((), flat.dtype)
        return xp.abs(flat).max() if norm_type > 0 else xp.abs(flat).min()
    if norm_type == 1.0:
        return xp.abs(flat).sum()
    if norm_type == 0.0:
        return xp.asarray(xp.count_nonzero(flat), dtype=flat.dtype)
    return (xp.abs(flat) ** norm_type).sum() ** (1.0 / norm_type)


def combine(xp: Any, norms: Any, norm_type: float) -> Any:
    """The norm of a vector of norms (per gradient, or per block of the kernel)."""
    if math.isinf(norm_type):
        return norms.max() if norm_type > 0 else norms.min()
    if norm_type == 0.0 or norm_type == 1.0:
        return norms.sum()
    return (norms**norm_type).sum() ** (1.0 / norm_type)


def coefficient(xp: Any, total: Any, max_norm: float) -> Any:
    """min(1, max_norm / (total + 1e-6)); NaN stays NaN (so a NaN gradient spreads, as PyTorch)."""
    return xp.minimum(max_norm / (total + EPS), 1.0)


def total_norm(xp: Any, grads: list, norm_type: float) -> Any:
    """The total norm of the arrays `grads`, a 0-d array of their result dtype."""
    norms = xp.stack([_grad_norm(xp, g, norm_type) for g in grads])
    dtype = xp.result_type(*[g.dtype for g in grads])
    # NumPy reductions give scalars, CuPy 0-d arrays: make both a 0-d array.
    return xp.asarray(combine(xp, norms, norm_type), dtype=dtype)


def scale_(xp: Any, grads: list, total: Any, max_norm: float) -> None:
    """Multiply every array in `grads` by the clip coefficient of `total`, in place."""
    coef = coefficient(xp, total, max_norm)
    for g in grads:
        g *= coef.astype(g.dtype)


def reference(xp: Any, grads: list, spec: ClipSpec) -> Any:
    """Scale `grads` in place so their total norm is at most max_norm; return that total."""
    total = total_norm(xp, grads, spec.norm_type)
    scale_(xp, grads, total, spec.max_norm)
    return total


# ---- the CUDA path --------------------------------------------------------------------------


def _table(be: KernelBackend, grads: list) -> Any:
    """The device table [pointers..., element counts...] (uint64) of `grads`, cached per set.

    A new set is written by clip_norm_table launches, 16 tensors each, with the pointers and
    sizes as kernel arguments: no host-to-device copy (which would wait for the device's queue,
    and which a CUDA graph capture refuses).
    """
    key = tuple((g.data.ptr, g.size) for g in grads)
    cache = be.__dict__.setdefault("_clip_tables", {})
    table = cache.get(key)
    if table is None:
        if len(cache) >= _TABLE_CACHE_SIZE:
            cache.clear()  # gradients in ever new buffers: start afresh
        table = cache[key] = be.xp.empty((2 * len(key),), dtype=np.uint64)
        count = np.int32(len(key))
        for first in range(0, len(key), TABLE_ARGS):
            part = list(key[first : first + TABLE_ARGS])
            pad = [(0, 0)] * (TABLE_ARGS - len(part))
            ptrs = [np.int64(p) for p, _ in part + pad]
            sizes = [np.int64(n) for _, n in part + pad]
            args = (table, count, np.int32(first), np.int32(len(part)), *ptrs, *sizes)
            be._launch("clip_grad_norm", "clip_norm_table", 1, 32, args)
    return table


def cuda(be: KernelBackend, grads: list, spec: ClipSpec) -> Any:
    """Two launches per dtype for norm_type 2 or inf over contiguous float32/16/bf16 gradients."""
    from gnn.backend.kernels import (
        ELEMENTWISE_THREADS,
        elementwise_launch,
        kernel_module,
        kernel_suffix,
    )

    if spec.norm_type not in (2.0, math.inf):
        return None
    groups: dict[str, list] = {}
    for g in grads:
        suffix = kernel_suffix(g.dtype)
        if suffix is None or not g.flags.c_contiguous:
            return None
        if g.size:
            groups.setdefault(suffix, []).append(g)
    if not groups:
        return None  # every gradient is empty: the reference's zeros
    xp = be.xp
    norm_inf = np.int32(spec.norm_type == math.inf)
    threads = ELEMENTWISE_THREADS
    with be._cuda_device:
        shapes = {}
        for suffix, group in groups.items():
            elements = max(g.size for g in group)
            shapes[suffix] = elementwise_launch(elements, group[0].itemsize, be._sms())[0]
        partial = xp.empty((sum(shapes.values()),), dtype=np.float32)
        tables, offset = {}, 0
        for suffix, group in groups.items():
            tables[suffix] = _table(be, group)
            count = np.int32(len(group))
            blocks = shapes[suffix]
            args: tuple = (tables[suffix], count, norm_inf, partial[offset : offset + blocks])
            module = kernel_module("clip_grad_norm", suffix)
            be._launch(module, f"clip_norm_partial_{suffix}", blocks, threads, args)
            offset += blocks
        totals = {}
        for suffix, group in groups.items():
            totals[suffix] = xp.empty((1,), dtype=group[0].dtype)
            args = (tables[suffix], np.int32(len(group)), partial, np.int32(partial.size))
            args = (*args, norm_inf, np.float32(spec.max_norm), totals[suffix])
            module = kernel_module("clip_grad_norm", suffix)
            be._launch(module, f"clip_norm_scale_{suffix}", shapes[suffix], threads, args)
    dtype = xp.result_type(*[g.dtype for g in grads])
    total = next((t for t in totals.values() if t.dtype == dtype), None)
    if total is None:
        total = next(iter(totals.values())).astype(dtype)
    return total.reshape(())


forward = Fused("clip_grad_norm", reference, cuda)
