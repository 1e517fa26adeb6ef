"""Sigmoid, fused: y = 1 / (1 + exp(-x)) and gx = gy * y * (1 - y), each in one pass.

The references below are the only Python formula of the op; the kernels are kernels/sigmoid.cu
(float32, float16) and kernels/sigmoid_bf16.cu, float32 math inside.
`forward(be, x)` and `backward(be, y, gy)` pick the kernel on a CUDA backend, else the reference.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gnn.backend.base import KernelBackend
from gnn.backend.fused import Fused

__all__ = ["backward", "forward", "reference", "reference_backward"]


def reference(xp: Any, x: Any) -> Any:
    """y = 1 / (1 + exp(-x)), in the overflow-free form 0.5 * tanh(0.5 x) + 0.5."""
    if getattr(x.dtype, "name", None) == "bfloat16":  # float32 math, one rounding (as kernels)
        return reference(xp, x.astype(np.float32)).astype(x.dtype)
    # out=: with a 0-d input a ufunc would return a scalar, which the in-place steps reject
    y = xp.multiply(x, 0.5, out=xp.empty(x.shape, dtype=x.dtype))
    xp.tanh(y, out=y)
    y *= 0.5
    y += 0.5
    return y


def reference_backward(xp: Any, y: Any, gy: Any) -> Any:
    """gx = gy * y * (1 - y), from the saved output y."""
    if getattr(y.dtype, "name", None) == "bfloat16":  # float32 math, one rounding
        f32 = np.float32
        return reference_backward(xp, y.astype(f32), gy.astype(f32)).astype(y.dtype)
    gx = xp.subtract(1, y, out=xp.empty(y.shape, dtype=y.dtype))
    gx *= y
    gx *= gy
    return gx


def _launch(be: KernelBackend, kernel: str, operands: tuple, like: Any) -> Any:
    """Run kernels/sigmoid.cu's `kernel` over `operands` (made contiguous), writing an array like
    `like`; None where like's dtype has no kernel."""
    from gnn.backend.kernels import elementwise_launch, kernel_module, kernel_suffix

    suffix = kernel_suffix(like.dtype)
    if suffix is None:
        return None
    xp = be.xp
    with be._cuda_device:
        operands = tuple(xp.ascontiguousarray(a) for a in operands)
        out = xp.empty(like.shape, dtype=like.dtype)
        if like.size:
            blocks, threads = elementwise_launch(like.size, like.itemsize, be._sms())
            args = (*operands, out, np.int64(like.size))
            module = kernel_module("sigmoid", suffix)
            be._launch(module, f"{kernel}_{suffix}", blocks, threads, args)
    return out


def cuda(be: KernelBackend, x: Any) -> Any:
    """The forward kernel for float32/float16/bfloat16 x; None (the reference) for others."""
    return _launch(be, "sigmoid_forward", (x,), x)


def cuda_backward(be: KernelBackend, y: Any, gy: Any) -> Any:
    """The one-pass backward kernel, when y and gy are arrays of one shape and a kernel dtype."""
    if not (be.is_array(gy) and gy.dtype == y.dtype and gy.shape == y.shape):
        return None
    return _launch(be, "sigmoid_backward", (y, gy), y)


forward = Fused("sigmoid", reference, cuda)
backward = Fused("sigmoid_backward", reference_backward, cuda_backward)
