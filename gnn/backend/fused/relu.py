"""ReLU's backward, fused: gx = gy * (y > 0) in one pass on a GPU (kernels/relu.cu).

The reference below is the only Python formula of it; the kernel covers float32 and float16 (other
dtypes, bfloat16 included, take the reference). `backward(be, y, gy)` picks the path.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gnn.backend.base import KernelBackend
from gnn.backend.fused import Fused

__all__ = ["backward", "reference_backward"]


def reference_backward(xp: Any, y: Any, gy: Any) -> Any:
    """gx = gy * (y > 0), from the saved output y = max(x, 0)."""
    return gy * (y > 0)


def cuda_backward(be: KernelBackend, y: Any, gy: Any) -> Any:
    """One launch for float32/float16 y and gy of one shape and dtype; None (the reference) else."""
    from gnn.backend.kernels import elementwise_launch

    suffix = {np.dtype(np.float32): "f32", np.dtype(np.float16): "f16"}.get(y.dtype)
    if suffix is None or not (be.is_array(gy) and gy.dtype == y.dtype and gy.shape == y.shape):
        return None
    xp = be.xp
    with be._cuda_device:
        y, gy = xp.ascontiguousarray(y), xp.ascontiguousarray(gy)
        gx = xp.empty(y.shape, dtype=y.dtype)
        if y.size:
            blocks, threads = elementwise_launch(y.size, y.itemsize, be._sms())
            args = (y, gy, gx, np.int64(y.size))
            be._launch("relu", f"relu_backward_{suffix}", blocks, threads, args)
    return gx


backward = Fused("relu_backward", reference_backward, cuda_backward)
