"""GELU with its bias, fused: y = gelu(x + bias); backward gx = gy gelu'(x + bias), gbias = sum gx.

The references below are the only Python formula of the op; the kernels are kernels/gelu.cu
(float32, float16) and kernels/gelu_bf16.cu, float32 math inside: one launch forward, one for gx
plus one for the bias gradient (deterministic column sums, no atomics). x is (..., D) and bias (D,)
or None. `forward(be, x, bias, spec)` and `backward(be, gy, saved, spec, needs)` pick the kernel on
a CUDA backend, else the reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from gnn.backend.base import Backend, KernelBackend
from gnn.backend.fused import Fused

__all__ = [
    "GeluSaved",
    "GeluSpec",
    "backward",
    "forward",
    "reference",
    "reference_backward",
]

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
TANH_CUBIC = 0.044715  # the cubic term of the tanh form
INV_SQRT_2 = 1.0 / math.sqrt(2.0)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
TILE = 32  # columns per block of the backward kernel (kTile in gelu.cu)


@dataclass(frozen=True)
class GeluSpec:
    """The op's setting: approximate is "none" (the erf form) or "tanh" (GPT-2's)."""

    approximate: str = "none"

    def __post_init__(self) -> None:
        if self.approximate not in ("none", "tanh"):
            raise ValueError(
                f"gelu: approximate must be 'none' or 'tanh', got {self.approximate!r}"
            )


@dataclass(frozen=True)
class GeluSaved:
    """What a forward keeps for its backward: a kernel keeps the input x and the bias; the
    reference keeps h = x + bias and aux (tanh(u) for "tanh", Phi(h) for "none") instead of x,
    so its backward recomputes nothing. bias is kept either way (None: no bias gradient)."""

    x: Any
    bias: Any
    h: Any = None
    aux: Any = None


def _low(dtype: Any) -> bool:
    return getattr(dtype, "name", None) == "bfloat16"


def reference(xp: Any, x: Any, bias: Any, spec: GeluSpec, erf: Any) -> tuple[Any, GeluSaved]:
    """y = gelu(x + bias) and what the backward needs; erf(a) is the backend's error function.

    In-place chains on one or two buffers (made with out=): GELU runs on the widest activations of
    a Transformer, where a fresh array per step doubled the time.
    """
    if _low(x.dtype):  # bfloat16: float32 math, one rounding (as the kernels)
        f32 = np.float32
        b32 = None if bias is None else bias.astype(f32)
        y, _ = reference(xp, x.astype(f32), b32, spec, erf)
        return y.astype(x.dtype), GeluSaved(x, bias)
    h = x if bias is None else xp.add(x, bias, out=xp.empty(x.shape, dtype=x.dtype))
    if spec.approximate == "tanh":
        # t = tanh(sqrt(2/pi) h (1 + 0.044715 h^2)); y = 0.5 h (1 + t)
        t = xp.multiply(h, h, out=xp.empty(h.shape, dtype=h.dtype))
        t *= TANH_CUBIC
        t += 1.0
        t *= h
        t *= SQRT_2_OVER_PI
        xp.tanh(t, out=t)
        y = xp.add(t, 1.0, out=xp.empty(h.shape, dtype=h.dtype))
        y *= h
        y *= 0.5
        return y, GeluSaved(None, bias, h, t)  # x itself is not needed: h replaces it
    # Phi(h) = 0.5 (1 + erf(h / sqrt 2)); y = h Phi(h)
    cdf = erf(h * INV_SQRT_2)
    cdf += 1.0
    cdf *= 0.5
    y = xp.multiply(h, cdf, out=xp.empty(h.shape, dtype=h.dtype))
    return y, GeluSaved(None, bias, h, cdf)


def reference_backward(
    xp: Any, gy: Any, saved: GeluSaved, spec: GeluSpec, needs: tuple[bool, bool], erf: Any
) -> tuple[Any, Any]:
    """(gx, gbias): gx = gy gelu'(h) with h = x + bias; gbias = gx summed over all but the last
    dim (None where needs says so, or without a bias)."""
    if _low(gy.dtype):  # bfloat16: float32 math, one rounding per output
        f32 = np.float32
        b32 = None if saved.bias is None else saved.bias.astype(f32)
        gx, gb = reference_backward(
            xp, gy.astype(f32), GeluSaved(saved.x.astype(f32), b32), spec, needs, erf
        )
        return (
            None if gx is None else gx.astype(gy.dtype),
            None if gb is None else gb.astype(gy.dtype),
        )
    h, aux = saved.h, saved.aux
    if h is None:  # saved by a kernel: recompute what the reference keeps
        _, full = reference(xp, saved.x, saved.bias, spec, erf)
        h, aux = full.h, full.aux
    if spec.approximate == "tanh":
        # 0.5 (1 + t) + 0.5 h (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 h^2)
        t = aux
        g = xp.multiply(t, t, out=xp.empty(h.shape, dtype=h.dtype))
        xp.subtract(1.0, g, out=g)
        g *= h
        g *= 0.5 * SQRT_2_OVER_PI
        w = xp.multiply(h, h, out=xp.empty(h.shape, dtype=h.dtype))
        w *= 3 * TANH_CUBIC
        w += 1.0
        g *= w
        xp.add(t, 1.0, out=w)
        w *= 0.5
        g += w
    else:
        # Phi(h) + h phi(h), phi(h) = exp(-h^2 / 2) / sqrt(2 pi)
        g = xp.multiply(h, h, out=xp.empty(h.shape, dtype=h.dtype))
        g *= -0.5
        xp.exp(g, out=g)
        g *= INV_SQRT_2PI
        g *= h
        g += aux
    g *= gy
    gb = None
    if needs[1] and saved.bias is not None:
        g2 = g.reshape(-1, g.shape[-1])
        if g2.dtype.kind == "f" and g2.dtype.itemsize >= 4:
            ones = xp.empty(g2.shape[0], dtype=g2.dtype)
            ones.fill(1.0)
            gb = ones @ g2  # BLAS: one pass, and closer than a row-by-row sum
        else:
            gb = g2.sum(axis=0)
    return (g if needs[0] else None), gb


# ---- the CUDA path --------------------------------------------------------------------------


def backward_shape(n: int, d: int, sm_count: int) -> tuple[int, int, int]:
    """(chunks, blocks, threads) of the backward kernel for n rows of d columns.

    Enough (tile, row chunk) blocks for about 4 per SM; row lanes of 8 rows or more, so a small
    chunk gets a small block. Depends only on n, d and the SM count (so does the bias sum).
    """
    tiles = -(-d // TILE)
    chunks = max(1, min(-(-4 * sm_count // tiles), -(-n // 8)))
    rows = -(-n // chunks)
    threads = 32 * min(32, -(-rows // 8))
    return chunks, max(1, min(tiles * chunks, 2**31 - 1)), threads


def _applies(arrays: tuple, dtype: Any) -> str | None:
    """The kernel suffix when every array has `dtype` and the kernel covers it, else None."""
    from gnn.backend.kernels import kernel_suffix

    suffix = kernel_suffix(dtype)
    if suffix is None or any(a is not None and a.dtype != dtype for a in arrays):
        return None
    return suffix


def cuda(be: KernelBackend, x: Any, bias: Any, spec: GeluSpec, erf: Any = None) -> Any:
    """The one-launch forward for float32/float16/bfloat16 x (bias of x's dtype); else None."""
    from gnn.backend.kernels import elementwise_launch, kernel_module

    suffix = _applies((bias,), x.dtype)
    if suffix is None or x.ndim == 0 or not x.size:
        return None
    xp = be.xp
    d = x.shape[-1]
    with be._cuda_device:
        x = xp.ascontiguousarray(x)
        b = x if bias is None else xp.ascontiguousarray(bias)  # never read without a bias
        y = xp.empty(x.shape, dtype=x.dtype)
        blocks, threads = elementwise_launch(x.size, x.itemsize, be._sms())
        flags = (np.int32(bias is not None), np.int32(spec.approximate == "tanh"))
        args = (x, b, *flags, np.int64(x.size // d), np.int64(d), y)
        module = kernel_module("gelu", suffix)
        be._launch(module, f"bias_gelu_forward_{suffix}", blocks, threads, args)
    return y, GeluSaved(x, bias)


def cuda_backward(
    be: KernelBackend, gy: Any, saved: GeluSaved, spec: GeluSpec, needs: tuple, erf: Any = None
) -> Any:
    """gx in one launch, the bias gradient in one more, after a kernel forward; else None."""
    from gnn.backend.kernels import elementwise_launch, kernel_module

    x, bias = saved.x, saved.bias
    if x is None:  # the reference's forward ran (float64, ...): so does its backward
        return None
    suffix = _applies((bias, gy), x.dtype)
    if suffix is None or gy.shape != x.shape or not x.size:
        return None
    xp = be.xp
    d = x.shape[-1]
    n = x.size // d
    need_bias = bool(needs[1]) and bias is not None
    module = kernel_module("gelu", suffix)
    with be._cuda_device:
        gy = xp.ascontiguousarray(gy)
        gx = xp.empty(x.shape, dtype=x.dtype)
        chunks, blocks, threads = backward_shape(n, d, be._sms())
        # partial column sums (float32, one row per chunk); a 1-element stand-in when unused
        partial = xp.empty((chunks, d) if need_bias else (1,), dtype=np.float32)
        b = x if bias is None else bias
        flags = (np.int32(bias is not None), np.int32(spec.approximate == "tanh"))
        sizes = (np.int64(n), np.int64(d), np.int64(chunks))
        args: tuple = (x, b, gy, *flags, *sizes, np.int32(need_bias), gx, partial)
        be._launch(module, f"bias_gelu_backward_{suffix}", blocks, threads, args)
        gb = None
        if need_bias:
            # needs[2], if given: where to write it (a gradient home, see Function.grad_home)
            gb = xp.empty((d,), x.dtype) if len(needs) < 3 or needs[2] is None else needs[2]
            blocks, threads = elementwise_launch(d, 4, be._sms())
            args = (partial, np.int64(chunks), np.int64(d), gb)
            be._launch(module, f"bias_gelu_backward_bias_{suffix}", blocks, threads, args)
    return (gx if needs[0] else None), gb


_forward = Fused("bias_gelu", reference, cuda)
_backward = Fused("bias_gelu_backward", reference_backward, cuda_backward)


def forward(be: Backend, x: Any, bias: Any, spec: GeluSpec) -> tuple[Any, GeluSaved]:
    """y = gelu(x + bias) on `be`: the kernel where it applies, else the reference."""
    return _forward(be, x, bias, spec, erf=be.erf)


def backward(
    be: Backend, gy: Any, saved: GeluSaved, spec: GeluSpec, needs: tuple
) -> tuple[Any, Any]:
    """(gx, gbias) on `be`, from what `forward` saved."""
    return _backward(be, gy, saved, spec, needs, erf=be.erf)
