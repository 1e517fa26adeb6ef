"""Convolution and pooling window steps: im2col, col2im, output layouts, max pooling.

The references below are the only Python formula of kernels/conv.cu (float32 and float16) and
what runs everywhere else (the CPU, other dtypes, empty batches): written for NumPy's speed, with
strided views, one copy of the windows and one strided add per kernel tap. A `Window` says where
the kh x kw windows of a sliding op fall on an (N, C, H, W) image. The columns layout is (C, kh,
kw, N, oh * ow): a convolution is then one matmul of the weights (O, C * kh * kw) with it, giving
(O, N * oh * ow). Every kernel is a gather (each output element is written by one thread, sums in
a fixed order): no atomics, deterministic. gnn/ops/conv.py picks the steps per call and has the
CPU's one other layout (stride 1, `_FlatSteps`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from gnn.backend.base import Backend, KernelBackend
from gnn.backend.fused import Fused

__all__ = [
    "Window",
    "applies",
    "col2im",
    "im2col",
    "max_pool",
    "max_pool_backward",
    "to_image",
    "to_rows",
]

THREADS = 256  # threads per block of every kernel in conv.cu (its __launch_bounds__)


@dataclass(frozen=True)
class Window:
    """Window geometry: input (n, c, h, w), kernel (kh, kw), stride, top/left padding, dilation,
    the number of window positions (oh, ow), and bottom/right padding (pb, pr: at least what the
    windows read is always there; larger keeps PyTorch's arguments, which the ONNX export reads)."""

    n: int
    c: int
    h: int
    w: int
    kh: int
    kw: int
    sh: int
    sw: int
    pt: int
    pl: int
    dh: int
    dw: int
    oh: int
    ow: int
    pb: int = 0
    pr: int = 0

    def ints(self) -> tuple:
        """The fields as the kernels take them: 14 int32 scalars, in field order (not pb, pr)."""
        return tuple(np.int32(v) for k, v in self.__dict__.items() if k not in ("pb", "pr"))

    def frame(self) -> tuple[int, int]:
        """(Hp, Wp): a padded frame that holds the input at (pt, pl) and every window."""
        hp = max(self.pt + self.h + self.pb, (self.oh - 1) * self.sh + (self.kh - 1) * self.dh + 1)
        wp = max(self.pl + self.w + self.pr, (self.ow - 1) * self.sw + (self.kw - 1) * self.dw + 1)
        return hp, wp

    def tap(self, i: int, j: int) -> tuple[slice, slice]:
        """The frame rows and columns that tap (i, j) reads, one per window position."""
        r, c = i * self.dh, j * self.dw
        return (
            slice(r, r + self.sh * (self.oh - 1) + 1, self.sh),
            slice(c, c + self.sw * (self.ow - 1) + 1, self.sw),
        )


# ---- the references -----------------------------------------------------------------------------


def _framed(xp: Any, x: Any, g: Window, fill: float) -> Any:
    """x (A, B, h, w) inside a padded frame of `fill` (x itself when no window reads padding)."""
    hp, wp = g.frame()
    if (hp, wp, g.pt, g.pl) == (g.h, g.w, 0, 0):
        return x
    out = xp.full((x.shape[0], x.shape[1], hp, wp), fill, dtype=x.dtype)
    out[:, :, g.pt : g.pt + g.h, g.pl : g.pl + g.w] = x
    return out


def _windows(xp: Any, x: Any, g: Window, fill: float) -> Any:
    """A strided view of the windows of x (N, C, H, W) framed in `fill`: (N, C, kh, kw, oh, ow)."""
    frame = _framed(xp, x, g, fill)
    s_n, s_c, s_h, s_w = frame.strides
    return xp.lib.stride_tricks.as_strided(
        frame,
        (g.n, g.c, g.kh, g.kw, g.oh, g.ow),
        (s_n, s_c, g.dh * s_h, g.dw * s_w, g.sh * s_h, g.sw * s_w),
    )


def _sum_taps(xp: Any, taps: Any, g: Window) -> Any:
    """taps (kh, kw, A, B, oh, ow) summed onto the frame tap by tap, in order; (A, B, h, w)."""
    hp, wp = g.frame()
    out = xp.zeros((taps.shape[2], taps.shape[3], hp, wp), dtype=taps.dtype)
    disjoint = g.sh > g.dh * (g.kh - 1) and g.sw > g.dw * (g.kw - 1)
    for i in range(g.kh):
        for j in range(g.kw):
            rows, cols = g.tap(i, j)
            if disjoint:  # every pixel in one window at most: a copy (2x faster than an add)
                out[:, :, rows, cols] = taps[i, j]
            else:
                out[:, :, rows, cols] += taps[i, j]
    return out[:, :, g.pt : g.pt + g.h, g.pl : g.pl + g.w]


def reference_im2col(xp: Any, x: Any, g: Window) -> Any:
    """The columns of x (N, C, H, W): (C * kh * kw, N * oh * ow), zero where a tap is padding."""
    cols = _windows(xp, x, g, 0.0).transpose(1, 2, 3, 0, 4, 5)  # one copy of the windows
    return xp.ascontiguousarray(cols).reshape(g.c * g.kh * g.kw, g.n * g.oh * g.ow)


def reference_col2im(xp: Any, cols: Any, g: Window) -> Any:
    """The adjoint of im2col: each pixel of (N, C, H, W) sums its taps' columns, taps in order."""
    taps = cols.reshape(g.c, g.kh, g.kw, g.n, g.oh, g.ow).transpose(1, 2, 0, 3, 4, 5)
    return xp.ascontiguousarray(_sum_taps(xp, taps, g).transpose(1, 0, 2, 3))  # sums by channel


def reference_to_image(xp: Any, y2: Any, bias: Any, n: int) -> Any:
    """y2 (O, N * P) as (N, O, P), plus bias (O,) when not None."""
    o, p = y2.shape[0], y2.shape[1] // n if n else 0
    y = xp.ascontiguousarray(y2.reshape(o, n, p).transpose(1, 0, 2))
    if bias is not None:
        y += bias[:, None]
    return y


def reference_to_rows(
    xp: Any, gy: Any, need_bias: bool = False, gbias: Any = None
) -> tuple[Any, Any]:
    """(gy2, gbias): gy (N, O, P) as (O, N * P), the layout of a matmul's output, and the sums of
    its rows (the bias gradient, into `gbias` when given; None unless need_bias)."""
    n, o = gy.shape[0], gy.shape[1]
    gy2 = xp.ascontiguousarray(gy.reshape(n, o, math.prod(gy.shape[2:])).transpose(1, 0, 2))
    gy2 = gy2.reshape(o, gy2.shape[1] * gy2.shape[2])
    return gy2, (gy2.sum(axis=1, out=gbias) if need_bias else None)


def reference_max_pool(xp: Any, x: Any, g: Window, need_idx: bool = True) -> tuple[Any, Any]:
    """(y, idx): each window's maximum (N, C, oh, ow) and its tap i * kw + j (int32).

    The first maximum wins (as PyTorch), a NaN beats every number (the first NaN); padding is
    -inf, so a window of -inf takes tap 0. idx is None unless need_idx (no gradient to route).
    """
    win = _windows(xp, x, g, -np.inf).transpose(2, 3, 0, 1, 4, 5)
    win = xp.ascontiguousarray(win).reshape((g.kh * g.kw, g.n, g.c, g.oh, g.ow))
    y, kk = win.max(axis=0), g.kh * g.kw
    if not need_idx:  # the taps cost the CPU half as much again as the maximum
        return y, None
    hit = win == y  # the taps that hold the maximum
    if xp.isnan(y).any():  # a NaN is its window's maximum: its taps hold it
        hit |= xp.isnan(win)
    rank = xp.arange(kk, 0, -1, dtype=np.uint8 if kk < 256 else np.int32)  # kk for tap 0, ...
    first = kk - (hit * rank.reshape(-1, 1, 1, 1, 1)).max(axis=0)  # bytes: 3x faster than int32
    return y, first.astype(np.int32)


def reference_max_pool_backward(xp: Any, gy: Any, idx: Any, g: Window) -> Any:
    """gx (N, C, H, W): each pixel sums gy over the windows whose maximum it is, taps in order.

    Each window's gradient lands on its idx tap alone (a NaN or inf one too, as in the kernel).
    """
    m = gy.size
    taps = xp.zeros(g.kh * g.kw * m, dtype=gy.dtype)  # (kh, kw, N, C, oh, ow), zero but at idx
    taps[idx.reshape(m).astype(np.intp) * m + xp.arange(m)] = gy.reshape(m)
    taps = taps.reshape(g.kh, g.kw, g.n, g.c, g.oh, g.ow)
    return xp.ascontiguousarray(_sum_taps(xp, taps, g))


# ---- the CUDA path ------------------------------------------------------------------------------


def applies(be: Backend, dtype: Any) -> bool:
    """Whether kernels/conv.cu runs on `be` for `dtype` (float32, float16 on a CUDA backend)."""
    if be.name != "cuda":  # the CPU's test first: its path pays nothing more
        return False
    from gnn.backend.kernels import KERNEL_DTYPES

    return np.dtype(dtype) in KERNEL_DTYPES


def _grid(be: KernelBackend, total: int) -> tuple[int, int]:
    """(blocks, threads) of a grid-stride kernel over `total` outputs."""
    return max(1, min(-(-total // THREADS), 8 * be._sms())), THREADS


def _run(be: KernelBackend, name: str, out: Any, args: tuple) -> Any:
    from gnn.backend.kernels import kernel_suffix

    blocks, threads = _grid(be, out.size)
    be._launch("conv", f"{name}_{kernel_suffix(out.dtype)}", blocks, threads, (*args, out))
    return out


def _ok(be: KernelBackend, *arrays: Any) -> bool:
    """Whether the kernels take these arrays: one kernel dtype, and not empty."""
    return (
        arrays[0].size > 0
        and applies(be, arrays[0].dtype)
        and all(a is None or a.dtype == arrays[0].dtype for a in arrays)
    )


def cuda_im2col(be: KernelBackend, x: Any, g: Window) -> Any:
    """One launch: the columns of x; None where the kernel does not apply."""
    if not _ok(be, x):
        return None
    xp = be.xp
    with be._cuda_device:
        x = xp.ascontiguousarray(x)
        cols = xp.empty((g.c * g.kh * g.kw, g.n * g.oh * g.ow), dtype=x.dtype)
        return _run(be, "conv_im2col", cols, (x, *g.ints()))


def cuda_col2im(be: KernelBackend, cols: Any, g: Window) -> Any:
    """One launch: each pixel gathers its taps from the columns; None where it does not apply."""
    if not _ok(be, cols):
        return None
    xp = be.xp
    with be._cuda_device:
        cols = xp.ascontiguousarray(cols)
        x = xp.empty((g.n, g.c, g.h, g.w), dtype=cols.dtype)
        return _run(be, "conv_col2im", x, (cols, *g.ints()))


def cuda_to_image(be: KernelBackend, y2: Any, bias: Any, n: int) -> Any:
    """One launch: (O, N * P) to (N, O, P) with the bias added; None where it does not apply."""
    if not _ok(be, y2, bias):
        return None
    xp = be.xp
    o = y2.shape[0]
    p = y2.shape[1] // n
    with be._cuda_device:
        y2 = xp.ascontiguousarray(y2)
        b = y2 if bias is None else xp.ascontiguousarray(bias)  # never read without a bias
        y = xp.empty((n, o, p), dtype=y2.dtype)
        sizes = (np.int64(n), np.int64(o), np.int64(p))
        return _run(be, "conv_to_image", y, (y2, b, np.int32(bias is not None), *sizes))


def cuda_to_rows(be: KernelBackend, gy: Any, need_bias: bool = False, gbias: Any = None) -> Any:
    """One launch: (N, O, P) to (O, N * P) and the bias gradient (into `gbias`, a contiguous (O,)
    array of gy's dtype, when given); None where it does not apply."""
    from gnn.backend.kernels import kernel_suffix

    if not _ok(be, gy):
        return None
    xp = be.xp
    n, o = gy.shape[0], gy.shape[1]
    p = gy.size // max(1, n * o)
    with be._cuda_device:
        gy = xp.ascontiguousarray(gy)
        gy2 = xp.empty((o, n * p), dtype=gy.dtype)
        gb = gy2  # never written without need_bias
        if need_bias:
            gb = xp.empty((o,), dtype=gy.dtype) if gbias is None else gbias
        # one block per channel: its threads sum the channel, then one adds their sums in order
        blocks = max(1, min(o, 2**31 - 1))
        sizes = (np.int64(n), np.int64(o), np.int64(p), np.int32(need_bias))
        name = f"conv_to_rows_{kernel_suffix(gy.dtype)}"
        be._launch("conv", name, blocks, THREADS, (gy, *sizes, gy2, gb))
        return gy2, (gb if need_bias else None)


def cuda_max_pool(be: KernelBackend, x: Any, g: Window, need_idx: bool = True) -> Any:
    """One launch: (y, idx) of every window (idx always: the kernel writes both); None where it
    does not apply."""
    if not _ok(be, x):
        return None
    xp = be.xp
    with be._cuda_device:
        x = xp.ascontiguousarray(x)
        y = xp.empty((g.n, g.c, g.oh, g.ow), dtype=x.dtype)
        idx = xp.empty(y.shape, dtype=np.int32)
        _run(be, "max_pool_forward", y, (x, *g.ints(), idx))
        return y, idx


def cuda_max_pool_backward(be: KernelBackend, gy: Any, idx: Any, g: Window) -> Any:
    """One launch: each input pixel gathers the gradients of the windows it is the max of."""
    if not _ok(be, gy):
        return None
    xp = be.xp
    with be._cuda_device:
        gy = xp.ascontiguousarray(gy)
        idx = xp.ascontiguousarray(idx)
        gx = xp.empty((g.n, g.c, g.h, g.w), dtype=gy.dtype)
        return _run(be, "max_pool_backward", gx, (gy, idx, *g.ints()))


im2col = Fused("conv_im2col", reference_im2col, cuda_im2col)
col2im = Fused("conv_col2im", reference_col2im, cuda_col2im)
to_image = Fused("conv_to_image", reference_to_image, cuda_to_image)
to_rows = Fused("conv_to_rows", reference_to_rows, cuda_to_rows)
max_pool = Fused("max_pool_forward", reference_max_pool, cuda_max_pool)
max_pool_backward = Fused("max_pool_backward", reference_max_pool_backward, cuda_max_pool_backward)
