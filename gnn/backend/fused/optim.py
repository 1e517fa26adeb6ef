"""Optimizer updates, fused: Adam/AdamW, SGD and RMSprop, each one pass over a group's buffers.

The references below are the only Python formula of each rule (PyTorch's); they update the
parameter and its state in place, on one parameter's arrays or on a whole flat buffer alike, so the
per-parameter path (gnn/optim/*), the flat path (gnn/optim/_flat.py) and the fake CuPy's kernel
stand-ins all run them. float16/bfloat16 arrays are updated in float32 and rounded once, as the
kernels do. The kernels are kernels/optim.cu (float32, float16) and kernels/optim_bf16.cu: one
launch per flat buffer and step.

A kernel reads the learning rate and Adam's step count from a `DeviceClock` (device memory), not
from its arguments, so a launch carries no value that changes from step to step and a captured
CUDA graph can replay it. The host writes the clock only when it disagrees with the host's lr or
step (a scheduler changed lr, a state was loaded): one small write, no sync. Adam's kernel counts
its own steps. `adam(be, ...)`, `sgd(be, ...)` and `rmsprop(be, ...)` pick the kernel on a CUDA
backend when a clock is given and the buffers fit, else the reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from gnn.backend.base import KernelBackend
from gnn.backend.fused import Fused

__all__ = [
    "AdamArrays", "AdamSpec", "DeviceClock", "RMSpropArrays", "RMSpropSpec", "SGDArrays",
    "SGDSpec", "adam", "adam_reference", "rmsprop", "rmsprop_reference", "sgd", "sgd_reference",
]  # fmt: skip


@dataclass(frozen=True)
class AdamSpec:
    """Adam's settings for one group; decoupled is AdamW's weight decay."""

    beta1: float
    beta2: float
    eps: float
    weight_decay: float
    amsgrad: bool = False
    decoupled: bool = False
    maximize: bool = False


@dataclass(slots=True)  # made per parameter per step: slots, not frozen, are cheap
class AdamArrays:
    """The arrays one Adam update reads and writes (all one shape and dtype)."""

    param: Any
    grad: Any
    exp_avg: Any
    exp_avg_sq: Any
    max_exp_avg_sq: Any = None  # with amsgrad


@dataclass(frozen=True)
class SGDSpec:
    """SGD's settings for one group."""

    momentum: float
    dampening: float
    weight_decay: float
    nesterov: bool = False
    maximize: bool = False


@dataclass(slots=True)  # made per parameter per step: slots, not frozen, are cheap
class SGDArrays:
    """The arrays one SGD update reads and writes; new_buffer: momentum_buffer is fresh (the first
    step sets it to the direction instead of blending it in)."""

    param: Any
    grad: Any
    momentum_buffer: Any = None  # with momentum
    new_buffer: bool = False


@dataclass(frozen=True)
class RMSpropSpec:
    """RMSprop's settings for one group."""

    alpha: float
    eps: float
    weight_decay: float
    momentum: float = 0.0
    centered: bool = False
    maximize: bool = False


@dataclass(slots=True)  # made per parameter per step: slots, not frozen, are cheap
class RMSpropArrays:
    """The arrays one RMSprop update reads and writes."""

    param: Any
    grad: Any
    square_avg: Any
    grad_avg: Any = None  # centered
    momentum_buffer: Any = None  # momentum > 0


class DeviceClock:
    """A flat buffer's learning rate and step count in device memory, read by its kernel.

    `lr` is a (1,) float64 array; `steps` a (2,) int64 array: the steps done, and the kernel's
    count of finished blocks (zero between launches). `host_lr` and `host_steps` are what the
    device holds as far as the host knows (None: unknown), so a write happens only on a change.
    `counted`: a kernel counts the steps here (Adam's), so `steps` is the count to report after
    graph replays, which the host does not see. `read_lr`: a kernel read lr from here (set by
    `set(xp, lr)`; the caller clears it before a step), so a new lr needs only a write here.
    """

    def __init__(self) -> None:
        self.lr: Any = None
        self.steps: Any = None
        self.host_lr: float | None = None
        self.host_steps: int | None = None
        self.counted = False
        self.read_lr = False

    def set(self, xp: Any, lr: float | None, steps: int | None = None) -> None:
        """Make the device hold `lr` (and `steps` steps done): written only where they differ."""
        if self.lr is None:
            self.lr = xp.zeros((1,), dtype=np.float64)
            self.steps = xp.zeros((2,), dtype=np.int64)
            self.host_lr, self.host_steps = 0.0, 0
        if lr is not None:
            self.read_lr = True
            if self.host_lr != lr:
                self.lr[0] = lr
                self.host_lr = lr
        if steps is not None and self.host_steps != steps:
            self.steps[0] = steps
            self.host_steps = steps

    def count(self, xp: Any, step: int) -> Any:
        """Count step `step` (1 for the first) on the device, as Adam's kernel does itself, for a
        rule whose kernel does not; returns the count, a 0-d device array."""
        self.set(xp, None, step - 1)
        self.steps[:1] += 1
        self.host_steps, self.counted = step, True
        return self.steps[0]


def _in_float32(arrays: Any, update: Any) -> None:
    """Run `update` on float32 copies of 16-bit arrays, then round each written array once."""
    given = {f.name: getattr(arrays, f.name) for f in fields(arrays)}
    buffers = {k: v for k, v in given.items() if hasattr(v, "dtype")}
    wide = {k: v.astype(np.float32) for k, v in buffers.items()}
    update(type(arrays)(**{**given, **wide}))
    for k, v in buffers.items():
        if k != "grad":
            v[...] = wide[k].astype(v.dtype)


# ---- references --------------------------------------------------------------------------------


def adam_reference(
    xp: Any, spec: AdamSpec, arrays: AdamArrays, lr: float, step: int, clock: Any = None
) -> None:
    """Adam's step `step` (1 for the first) in place; `clock` is the kernel's (unused here).

    `step` is a host int, or on a GPU a 0-d device array (gnn/optim/_device_scalars.py): the bias
    corrections are then computed on the device, so a captured step replays with the right ones.
    """
    if arrays.param.itemsize < 4:  # 16-bit arrays: float32 math, one rounding
        return _in_float32(arrays, lambda a: adam_reference(xp, spec, a, lr, step))
    x, m, v = arrays.param, arrays.exp_avg, arrays.exp_avg_sq
    grad = xp.negative(arrays.grad) if spec.maximize else arrays.grad  # inline: per parameter
    beta1, beta2, wd = spec.beta1, spec.beta2, spec.weight_decay
    if wd:
        if spec.decoupled:  # AdamW: decay the weights themselves
            x *= 1.0 - lr * wd
        else:  # L2: decay through the gradient
            decayed = xp.multiply(x, wd)
            decayed += grad
            grad = decayed
    tmp = xp.subtract(grad, m)  # m += (1 - beta1) * (g - m), PyTorch's lerp
    tmp *= 1.0 - beta1
    m += tmp
    xp.multiply(grad, grad, out=tmp)  # v = beta2 * v + (1 - beta2) * g * g
    tmp *= 1.0 - beta2
    v *= beta2
    v += tmp
    if spec.amsgrad:
        vmax = arrays.max_exp_avg_sq
        xp.maximum(vmax, v, out=vmax)
        v = vmax
    xp.sqrt(v, out=tmp)  # denom = sqrt(v) / sqrt(1 - beta2^t) + eps
    bc1, bc2 = 1.0 - beta1**step, 1.0 - beta2**step
    if type(bc2) is float:
        tmp /= math.sqrt(bc2)
    else:  # device numbers (float64): rounded to the arrays' dtype first, as a host float is
        xp.divide(tmp, xp.sqrt(bc2), out=tmp, dtype=tmp.dtype)
    tmp += spec.eps
    xp.divide(m, tmp, out=tmp)
    xp.multiply(tmp, lr / bc1, out=tmp, dtype=tmp.dtype)
    x -= tmp


def sgd_reference(xp: Any, spec: SGDSpec, arrays: SGDArrays, lr: float, clock: Any = None) -> None:
    """One SGD step in place: p -= lr * d, d the gradient (plus decay) or its momentum buffer."""
    if arrays.param.itemsize < 4:  # 16-bit arrays: float32 math, one rounding
        return _in_float32(arrays, lambda a: sgd_reference(xp, spec, a, lr))
    x, mom, wd = arrays.param, spec.momentum, spec.weight_decay
    d = xp.negative(arrays.grad) if spec.maximize else arrays.grad  # inline: per parameter
    owned = spec.maximize  # d is a scratch array we may overwrite
    if wd:
        decayed = xp.multiply(x, wd)
        decayed += d
        d, owned = decayed, True
    if mom:
        buf = arrays.momentum_buffer
        if arrays.new_buffer:
            buf[...] = d
        else:
            buf *= mom
            damp = spec.dampening
            buf += xp.multiply(d, 1.0 - damp) if damp else d
        if spec.nesterov:
            step_dir = xp.multiply(buf, mom)
            step_dir += d
            d, owned = step_dir, True
        else:
            d, owned = buf, False
    if owned:
        d *= lr
        x -= d
    else:
        x -= xp.multiply(d, lr)


def rmsprop_reference(
    xp: Any, spec: RMSpropSpec, arrays: RMSpropArrays, lr: float, clock: Any = None
) -> None:
    """One RMSprop step in place (centered and momentum as PyTorch's)."""
    if arrays.param.itemsize < 4:  # 16-bit arrays: float32 math, one rounding
        return _in_float32(arrays, lambda a: rmsprop_reference(xp, spec, a, lr))
    x, alpha, wd, mom = arrays.param, spec.alpha, spec.weight_decay, spec.momentum
    grad = xp.negative(arrays.grad) if spec.maximize else arrays.grad  # inline: per parameter
    if wd:
        decayed = xp.multiply(x, wd)
        decayed += grad
        grad = decayed
    sq = arrays.square_avg
    tmp = xp.multiply(grad, grad)
    tmp *= 1.0 - alpha
    sq *= alpha
    sq += tmp
    if spec.centered:
        ga = arrays.grad_avg
        xp.subtract(grad, ga, out=tmp)  # ga += (1 - alpha) * (g - ga), a lerp
        tmp *= 1.0 - alpha
        ga += tmp
        xp.multiply(ga, ga, out=tmp)
        xp.subtract(sq, tmp, out=tmp)
        xp.sqrt(tmp, out=tmp)
    else:
        xp.sqrt(sq, out=tmp)
    tmp += spec.eps
    xp.divide(grad, tmp, out=tmp)
    if mom > 0:
        buf = arrays.momentum_buffer
        buf *= mom
        buf += tmp
        xp.multiply(buf, lr, out=tmp)
    else:
        tmp *= lr
    x -= tmp


# ---- kernels -----------------------------------------------------------------------------------


def _kernel(be: KernelBackend, arrays: Any, clock: DeviceClock | None) -> str | None:
    """The kernel-name suffix when a kernel applies: a clock, 1-D contiguous same-dtype buffers."""
    from gnn.backend.kernels import kernel_suffix

    if clock is None:
        return None
    x = arrays.param
    suffix = kernel_suffix(x.dtype)
    buffers = [v for f in fields(arrays) if hasattr(v := getattr(arrays, f.name), "dtype")]
    fits = all(
        be.is_array(b) and b.dtype == x.dtype and b.shape == x.shape and b.flags.c_contiguous
        for b in buffers
    )
    return suffix if fits and x.ndim == 1 and x.size else None


def _launch(
    be: KernelBackend, kernel: str, suffix: str, n: int, itemsize: int, args: tuple
) -> bool:
    from gnn.backend.kernels import elementwise_launch, kernel_module

    blocks, threads = elementwise_launch(n, itemsize, be._sms())
    be._launch(kernel_module("optim", suffix), f"{kernel}_{suffix}", blocks, threads, args)
    return True


def adam_cuda(
    be: KernelBackend, spec: AdamSpec, arrays: AdamArrays, lr: float, step: int, clock: Any = None
) -> bool | None:
    """The Adam kernel on flat buffers with a clock; None (the reference) otherwise. Buffers the
    kernel does not take (float64) get the reference with the clock's step count, on the device."""
    suffix = _kernel(be, arrays, clock)
    if suffix is None:
        if clock is None:
            return None
        with be._cuda_device:
            adam_reference(be.xp, spec, arrays, lr, clock.count(be.xp, step))
        return True
    x, m, v = arrays.param, arrays.exp_avg, arrays.exp_avg_sq
    vmax = arrays.max_exp_avg_sq if spec.amsgrad else v
    with be._cuda_device:
        clock.set(be.xp, float(lr), step - 1)
        args = (
            x, arrays.grad, m, v, vmax, clock.lr, clock.steps, np.int64(x.size),
            np.float64(spec.beta1), np.float64(spec.beta2), np.float64(spec.eps),
            np.float64(spec.weight_decay), np.int32(spec.maximize), np.int32(spec.amsgrad),
            np.int32(spec.decoupled),
        )  # fmt: skip
        _launch(be, "adam_step", suffix, x.size, x.itemsize, args)
    clock.host_steps, clock.counted = step, True  # the kernel counted it
    return True


def sgd_cuda(
    be: KernelBackend, spec: SGDSpec, arrays: SGDArrays, lr: float, clock: Any = None
) -> bool | None:
    """The SGD kernel on flat buffers with a clock; None (the reference) otherwise."""
    suffix = _kernel(be, arrays, clock)
    if suffix is None:
        return None
    x = arrays.param
    buf = arrays.momentum_buffer if spec.momentum else x
    with be._cuda_device:
        clock.set(be.xp, float(lr))
        args = (
            x, arrays.grad, buf, clock.lr, np.int64(x.size), np.float64(spec.momentum),
            np.float64(spec.dampening), np.float64(spec.weight_decay), np.int32(spec.maximize),
            np.int32(spec.nesterov), np.int32(arrays.new_buffer),
        )  # fmt: skip
        return _launch(be, "sgd_step", suffix, x.size, x.itemsize, args)


def rmsprop_cuda(
    be: KernelBackend, spec: RMSpropSpec, arrays: RMSpropArrays, lr: float, clock: Any = None
) -> bool | None:
    """The RMSprop kernel on flat buffers with a clock; None (the reference) otherwise."""
    suffix = _kernel(be, arrays, clock)
    if suffix is None:
        return None
    x, sq = arrays.param, arrays.square_avg
    ga = arrays.grad_avg if spec.centered else sq
    buf = arrays.momentum_buffer if spec.momentum > 0 else sq
    with be._cuda_device:
        clock.set(be.xp, float(lr))
        args = (
            x, arrays.grad, sq, ga, buf, clock.lr, np.int64(x.size), np.float64(spec.alpha),
            np.float64(spec.eps), np.float64(spec.weight_decay), np.float64(spec.momentum),
            np.int32(spec.maximize), np.int32(spec.centered),
        )  # fmt: skip
        return _launch(be, "rmsprop_step", suffix, x.size, x.itemsize, args)


adam = Fused("adam", adam_reference, adam_cuda)
sgd = Fused("sgd", sgd_reference, sgd_cuda)
rmsprop = Fused("rmsprop", rmsprop_reference, rmsprop_cuda)
