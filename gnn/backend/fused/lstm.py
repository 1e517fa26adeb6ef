"""One LSTM time step, fused: the cell forward and its backward, each one pass over (B, H).

The references below are the only Python formula of the step; the kernels are
kernels/lstm_cell.cu (float32, float16; float32 math inside). Gate blocks i, f, g, o (PyTorch's);
a row of a gate array is [i | f | g | o], 4H wide. The recurrent matmuls (h W_hh^T forward, the
gate gradients times W_hh backward) are not part of the step: the caller runs them with cuBLAS.
`forward(be, step, out)` and `backward(be, grad, out)` pick the kernel on a CUDA backend, else the
reference; both write into the arrays of `out` (the caller's per-step slices of its buffers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gnn.backend.base import Backend, KernelBackend
from gnn.backend.fused import Fused

__all__ = [
    "Bias",
    "GradIn",
    "GradOut",
    "StepIn",
    "StepOut",
    "backward",
    "forward",
    "reference",
    "reference_backward",
]


@dataclass(frozen=True)
class Bias:
    """Both bias vectors (4H,), added to every row of the pre-activations."""

    ih: Any
    hh: Any


@dataclass(frozen=True)
class StepIn:
    """One forward step's operands."""

    xw: Any  # (B, 4H): x_t W_ih^T
    rec: Any | None  # (B, 4H): h_{t-1} W_hh^T; None when h_{t-1} is zero
    c_prev: Any | None  # (B, H): c_{t-1}; None when zero
    bias: Bias | None


@dataclass(frozen=True)
class StepOut:
    """Where one forward step writes: the activated gates (what the backward reads), c_t, h_t."""

    gates: Any  # (B, 4H): i, f, g, o after their sigmoid / tanh; may be StepIn.xw (overwritten)
    c: Any  # (B, H)
    h: Any  # (B, H)


@dataclass(frozen=True)
class GradIn:
    """One backward step's operands: the forward's saved arrays and the gradients reaching it."""

    gates: Any  # (B, 4H): StepOut.gates of this step
    c: Any  # (B, H): c_t
    c_prev: Any | None  # (B, H): c_{t-1}; None when zero
    gy_h: Any  # (B, H): the gradient of h_t from the layer's output
    gh_rec: Any | None  # (B, H): the gradient of h_t through step t + 1 (its gates @ W_hh)
    gc: Any  # (B, H): the gradient of c_t from step t + 1 (or of c_n)


@dataclass(frozen=True)
class GradOut:
    """Where one backward step writes."""

    dgates: Any  # (B, 4H): the gradient of the pre-activations x W_ih^T + h W_hh^T + b
    gc_prev: Any  # (B, H): the gradient reaching c_{t-1}; may be GradIn.gc (overwritten)


def _sigmoid(xp: Any, v: Any) -> Any:
    """0.5 tanh(v / 2) + 0.5: the logistic function without overflow (as kernels/sigmoid.cu)."""
    return 0.5 * xp.tanh(0.5 * v) + 0.5


def reference(xp: Any, step: StepIn, out: StepOut | None = None) -> StepOut:
    """a = xw + rec + (b_ih + b_hh); i, f, o = sigmoid, g = tanh; c = f c' + i g; h = o tanh(c).

    Absent operands (None) are zeros. With `out`, the results are written into its arrays.
    """
    a = step.xw if step.rec is None else step.xw + step.rec
    if step.bias is not None:
        a = a + (step.bias.ih + step.bias.hh)
    n_h = a.shape[-1] // 4
    i, f, o = (_sigmoid(xp, a[..., k * n_h : (k + 1) * n_h]) for k in (0, 1, 3))
    g = xp.tanh(a[..., 2 * n_h : 3 * n_h])
    c = i * g if step.c_prev is None else f * step.c_prev + i * g
    h = o * xp.tanh(c)
    gates = xp.concatenate((i, f, g, o), axis=-1)
    if out is None:
        return StepOut(gates, c, h)
    out.gates[...] = gates
    out.c[...] = c
    out.h[...] = h
    return out


def reference_backward(xp: Any, grad: GradIn, out: GradOut | None = None) -> GradOut:
    """The pre-activation gradients of one step and the gradient reaching c_{t-1}."""
    n_h = grad.c.shape[-1]
    i, f, g, o = (grad.gates[..., k * n_h : (k + 1) * n_h] for k in range(4))
    tc = xp.tanh(grad.c)
    gh = grad.gy_h if grad.gh_rec is None else grad.gy_h + grad.gh_rec
    gct = grad.gc + gh * o * (1.0 - tc * tc)
    df = xp.zeros_like(gct) if grad.c_prev is None else gct * grad.c_prev * (f * (1.0 - f))
    di = gct * g * (i * (1.0 - i))
    dg = gct * i * (1.0 - g * g)
    do = gh * tc * (o * (1.0 - o))
    dgates = xp.concatenate((di, df, dg, do), axis=-1)
    gc_prev = gct * f
    if out is None:
        return GradOut(dgates, gc_prev)
    out.dgates[...] = dgates
    out.gc_prev[...] = gc_prev
    return out


# ---- the kernels --------------------------------------------------------------------------------


def _suffix(be: KernelBackend, *arrays: Any) -> str | None:
    """The kernel suffix when every array is one kernel dtype, else None (the reference)."""
    from gnn.backend.kernels import kernel_suffix

    dtype = arrays[0].dtype
    suffix = kernel_suffix(dtype)
    if suffix not in ("f32", "f16"):
        return None
    if any(not be.is_array(a) or a.dtype != dtype for a in arrays if a is not None):
        return None
    return suffix


def _contiguous(arrays: tuple) -> bool:
    return all(a is None or a.flags.c_contiguous for a in arrays)


def _launch(be: KernelBackend, kernel: str, suffix: str, size: int, args: tuple) -> None:
    """Queue `kernel` over `size` (batch * hidden) elements, one per thread, grid-stride."""
    from gnn.backend.kernels import BLOCKS_PER_SM, ELEMENTWISE_THREADS

    if size:
        threads = ELEMENTWISE_THREADS
        blocks = max(1, min(-(-size // threads), be._sms() * BLOCKS_PER_SM))
        with be._cuda_device:
            be._launch("lstm_cell", f"{kernel}_{suffix}", blocks, threads, args)


def cuda(be: KernelBackend, step: StepIn, out: StepOut) -> StepOut | None:
    """The forward kernel, writing `out`; None (the reference) for other dtypes or layouts."""
    bias = step.bias
    operands = (step.xw, step.rec, step.c_prev, out.gates, out.c, out.h)
    biases = (bias.ih, bias.hh) if bias is not None else ()
    suffix = _suffix(be, *operands, *biases)
    if suffix is None or not _contiguous(operands + biases):
        return None
    batch, n_h = out.c.shape
    some = step.xw  # stands in for an absent operand (never read)
    args = (
        step.xw,
        some if step.rec is None else step.rec,
        some if bias is None else bias.ih,
        some if bias is None else bias.hh,
        out.c if step.c_prev is None else step.c_prev,
        np.int32(step.rec is not None),
        np.int32(bias is not None),
        np.int32(step.c_prev is not None),
        np.int64(batch),
        np.int64(n_h),
        out.gates,
        out.c,
        out.h,
    )
    _launch(be, "lstm_cell_forward", suffix, batch * n_h, args)
    return out


def cuda_backward(be: KernelBackend, grad: GradIn, out: GradOut) -> GradOut | None:
    """The backward kernel, writing `out`; None (the reference) for other dtypes or layouts."""
    operands: tuple = (grad.gates, grad.c, grad.c_prev, grad.gy_h, grad.gh_rec, grad.gc)
    operands += (out.dgates, out.gc_prev)
    suffix = _suffix(be, *operands)
    if suffix is None or not _contiguous(operands):
        return None
    batch, n_h = grad.c.shape
    args = (
        grad.gates,
        grad.c,
        grad.c if grad.c_prev is None else grad.c_prev,
        np.int32(grad.c_prev is not None),
        grad.gy_h,
        grad.gy_h if grad.gh_rec is None else grad.gh_rec,
        np.int32(grad.gh_rec is not None),
        grad.gc,
        np.int64(batch),
        np.int64(n_h),
        out.gc_prev,
        out.dgates,
    )
    _launch(be, "lstm_cell_backward", suffix, batch * n_h, args)
    return out


forward = Fused("lstm_cell", reference, cuda)
backward = Fused("lstm_cell_backward", reference_backward, cuda_backward)


def runs_per_step(be: Backend) -> bool:
    """Whether a recurrent layer on `be` should loop over these steps: on a CUDA backend, yes.

    The CPU keeps gnn/ops/rnn.py's NumPy cell (Lstm), which works on whole-sequence arrays where
    it can (the input terms, the backward's coefficients) and makes fewer, larger calls.
    """
    return be.name == "cuda"
