"""Layer norm, fused, over the rows of x (N, D): y = (x - mean) * rstd * weight + bias.

The references below are the only Python formula of the op; the kernels are kernels/layer_norm.cu
(float32, float16) and kernels/layer_norm_bf16.cu: one launch forward, one for gx and one for
gweight and gbias backward. Statistics are float32 at least (float64 stays float64).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from gnn.backend.base import KernelBackend
from gnn.backend.fused import Fused

__all__ = ["Needs", "Saved", "backward", "forward", "reference", "reference_backward"]


@dataclass(frozen=True, slots=True)
class Saved:
    """What the forward keeps for the backward: each row's statistics, and from the reference
    also xhat, which spares the backward recomputing it (the kernels keep the statistics only,
    and their backward reads x again)."""

    mean: Any  # (N,)
    rstd: Any  # (N,) 1 / sqrt(var + eps)
    xhat: Any = None  # (N, D) (x - mean) * rstd, or None


class Needs(NamedTuple):
    """Which gradients the backward computes (the others come back as None)."""

    x: bool
    weight: bool
    bias: bool
    # where the CUDA kernel may write gweight / gbias ((D,) contiguous, x's dtype: a gradient
    # home, see Function.grad_home), else None; the reference ignores them
    weight_out: Any = None
    bias_out: Any = None


def reference(xp: Any, x: Any, weight: Any, bias: Any, eps: float) -> tuple[Any, Saved]:
    """(y, saved) for x (N, D) and weight, bias (D,) or None, y in x's dtype."""
    acc = np.float64 if x.dtype == np.float64 else np.float32
    xa = x.astype(acc, copy=False)
    mean = xa.mean(axis=1, keepdims=True)
    xc = xa - mean
    rstd = 1.0 / xp.sqrt((xc * xc).mean(axis=1, keepdims=True) + eps)
    xc *= rstd  # now xhat
    y = xc * weight if weight is not None else xc.copy() if bias is not None else xc
    if bias is not None:
        y += bias
    return y.astype(x.dtype, copy=False), Saved(mean[:, 0], rstd[:, 0], xc)


def reference_backward(
    xp: Any, x: Any, gy: Any, saved: Saved, weight: Any, needs: Needs
) -> tuple[Any, Any, Any]:
    """(gx, gweight, gbias) in gy's dtype, None where `needs` says; x is read only when saved
    has no xhat."""
    mean, rstd = saved.mean[:, None], saved.rstd[:, None]
    xhat = saved.xhat if saved.xhat is not None else (x.astype(mean.dtype) - mean) * rstd
    g = gy.astype(xhat.dtype, copy=False)
    gx = gw = gb = None
    if needs.x:
        gxhat = g * weight if weight is not None else g
        gx = gxhat - gxhat.mean(axis=1, keepdims=True)
        gx -= xhat * (gxhat * xhat).mean(axis=1, keepdims=True)
        gx *= rstd
        gx = gx.astype(gy.dtype, copy=False)
    if needs.weight or needs.bias:
        # column sums as ones @ a: BLAS, one pass, more exact than sum(axis=0)
        ones = xp.empty(g.shape[0], dtype=g.dtype)
        ones.fill(1.0)
        if needs.weight:
            gw = (ones @ (g * xhat)).astype(gy.dtype, copy=False)
        if needs.bias:
            gb = (ones @ g).astype(gy.dtype, copy=False)
    return gx, gw, gb


# ---- the kernels --------------------------------------------------------------------------------


def cuda(be: KernelBackend, x: Any, weight: Any, bias: Any, eps: float) -> tuple[Any, Saved] | None:
    """The forward kernel (Saved without xhat); None for float64, empty x or mixed dtypes."""
    from gnn.backend.kernels import kernel_module, kernel_suffix, row_blocks, row_threads

    suffix = kernel_suffix(x.dtype)
    if (
        suffix is None
        or not x.size
        or any(p is not None and p.dtype != x.dtype for p in (weight, bias))
    ):
        return None
    xp = be.xp
    n, d = x.shape
    with be._cuda_device:
        x = xp.ascontiguousarray(x)
        # an absent weight or bias is never read: x stands in for its pointer
        w = x if weight is None else xp.ascontiguousarray(weight)
        b = x if bias is None else xp.ascontiguousarray(bias)
        y = xp.empty((n, d), dtype=x.dtype)
        mean = xp.empty((n,), dtype=np.float32)
        rstd = xp.empty((n,), dtype=np.float32)
        flags = (np.int32(weight is not None), np.int32(bias is not None))
        args = (x, w, b, *flags, np.int64(n), np.int64(d), np.float32(eps), y, mean, rstd)
        module = kernel_module("layer_norm", suffix)
        threads = row_threads(d, x.itemsize)
        be._launch(module, f"layer_norm_forward_{suffix}", row_blocks(n), threads, args)
    return y, Saved(mean, rstd)


def cuda_backward(
    be: KernelBackend, x: Any, gy: Any, saved: Saved, weight: Any, needs: Needs
) -> tuple[Any, Any, Any] | None:
    """gx by one launch, gweight and gbias by another (each column summed by one block in a
    fixed order: deterministic); None where the forward ran the reference."""
    from gnn.backend.kernels import kernel_module, kernel_suffix, row_blocks, row_threads

    suffix = kernel_suffix(getattr(x, "dtype", None))
    if (
        suffix is None
        or saved.xhat is not None
        or not x.size
        or gy.dtype != x.dtype
        or (weight is not None and weight.dtype != x.dtype)
    ):
        return None
    xp = be.xp
    n, d = x.shape
    gx = gw = gb = None
    module = kernel_module("layer_norm", suffix)
    sizes = (np.int64(n), np.int64(d))
    args: tuple
    with be._cuda_device:
        x, gy = xp.ascontiguousarray(x), xp.ascontiguousarray(gy)
        if needs.x:
            gx = xp.empty((n, d), dtype=x.dtype)
            w = x if weight is None else xp.ascontiguousarray(weight)
            has_weight = np.int32(weight is not None)
            args = (x, gy, w, has_weight, saved.mean, saved.rstd, *sizes, gx)
            threads = row_threads(d, x.itemsize)
            be._launch(module, f"layer_norm_backward_x_{suffix}", row_blocks(n), threads, args)
        if needs.weight or needs.bias:
            gw = gb = None
            if needs.weight:
                gw = xp.empty((d,), x.dtype) if needs.weight_out is None else needs.weight_out
            if needs.bias:
                gb = xp.empty((d,), x.dtype) if needs.bias_out is None else needs.bias_out
            # a gradient not asked for is never written: the other one stands in
            outs = (gb if gw is None else gw, gw if gb is None else gb)
            flags = (np.int32(needs.weight), np.int32(needs.bias))
            args = (x, gy, saved.mean, saved.rstd, *sizes, *flags, *outs)
            blocks = max(1, min(-(-d // 32), 2**31 - 1))  # 32-column tiles
            # 32 columns x up to 32 row lanes of at least 8 rows each (idle lanes cost a
            # barrier and a slot each; in the CPU emulator, host threads)
            threads = 32 * min(32, -(-n // 8))
            be._launch(module, f"layer_norm_backward_wb_{suffix}", blocks, threads, args)
    return gx, gw, gb


forward = Fused("layer_norm", reference, cuda)
backward = Fused("layer_norm_backward", reference_backward, cuda_backward)
