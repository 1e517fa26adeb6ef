"""2-D convolution, transposed convolution, max and average pooling (NCHW, PyTorch's arguments).

A convolution is one (grouped) matmul of the weights with the im2col columns of its windows;
gradients that fall on overlapping windows are summed back by col2im. These window steps, and the
layout changes around the matmul, are gnn/backend/fused/conv.py's: on a GPU (float32, float16)
kernels/conv.cu, one launch each, elsewhere their NumPy reference (strided views, one copy of the
windows, one strided add per kernel tap: no Python loop over pixels or images). At stride 1 the
CPU uses a layout of its own, `_FlatSteps`. ConvTranspose2d is Conv2d's adjoint in x: its forward
is Conv2d's input gradient, its backward runs Conv2d's forward steps. Pooling reads the same
windows: max pooling through its own kernels, average pooling through im2col and col2im.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from gnn.backend.fused import conv as fconv
from gnn.backend.fused.conv import Window
from gnn.dtypes import is_floating
from gnn.ops._util import Configured
from gnn.ops.autocast import cast_inputs, compute_widened
from gnn.ops.registry import register
from gnn.tensor import Tensor

# ---- argument parsing ---------------------------------------------------------------------------


def int_pair(value: Any, name: str, op: str, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints, each >= minimum, as a 2-tuple (or a ValueError naming the op or
    layer): the size arguments of the convolution and pooling ops and layers."""
    pair = (value, value) if isinstance(value, int) and not isinstance(value, bool) else value
    try:
        pair = tuple(pair)
    except TypeError:
        pair = ()
    if len(pair) != 2 or any(
        not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < minimum for v in pair
    ):
        raise ValueError(
            f"{op}: {name} must be an int >= {minimum} or a pair of them, got {value!r}"
        )
    return int(pair[0]), int(pair[1])


def _check_input(op: str, x: Tensor, expected: str) -> None:
    """A ValueError unless x is 4-D (`expected` says what was), a TypeError unless floating."""
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a {expected}, got shape {x.shape}")
    if not is_floating(x.dtype):
        raise TypeError(f"{op}: expected a floating-point input, got dtype {x.dtype}")


def _window(
    op: str, x: Tensor, kernel: tuple, strides: tuple, pads: tuple, dil: tuple, ceil: bool = False
) -> Window:
    """The windows of a convolution or pooling op on x (N, C, H, W), pads (top, bottom, left,
    right), with PyTorch's output size rule (ceil_mode's included)."""
    n, c, h, w = x.shape
    out, far = [], []
    for size, k, s, before, after, d in zip((h, w), kernel, strides, pads[::2], pads[1::2], dil):
        eff = d * (k - 1) + 1  # the dilated kernel's extent
        o = (size + before + after - eff + (s - 1 if ceil else 0)) // s + 1
        if ceil and (o - 1) * s >= size + before:  # the last window must start inside the input
            o -= 1
        if o <= 0:  # (in ceil_mode a window may be wider than the padded input, as in PyTorch)
            raise ValueError(
                f"{op}: input of spatial size ({h}, {w}) is too small for kernel_size={kernel}, "
                f"dilation={dil}, padding={pads} (top, bottom, left, right)"
            )
        out.append(o)
        far.append(max(after, (o - 1) * s + eff - size - before))  # ceil_mode's overhang too
    return Window(n, c, h, w, *kernel, *strides, *pads[::2], *dil, *out, *far)


def _unbatched(op: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Let `op` take an unbatched (C, H, W) input too: it runs on a batch of one."""

    @functools.wraps(op)
    def either(input: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        if input.ndim == 3:
            return op(input.unsqueeze(0), *args, **kwargs).squeeze(0)
        return op(input, *args, **kwargs)

    return either


# ---- the window steps of a convolution ----------------------------------------------------------


class _Steps:
    """The window steps on one geometry: the kernels of kernels/conv.cu where they apply, else
    their NumPy reference. Columns are (C * kh * kw, M), rows (O, M), images (N, O, oh, ow).

    im2col(x), col2im(cols); to_rows(y, need_bias, gbias): y as rows, and their sums (the bias
    gradient) when need_bias; to_image(y2, bias): rows as an image, plus bias (O,) when not None.
    (_FlatSteps has the same four.)
    """

    def __init__(self, be: Any, g: Window) -> None:
        self.im2col = functools.partial(fconv.im2col, be, g=g)
        self.col2im = functools.partial(fconv.col2im, be, g=g)
        self.to_rows = functools.partial(fconv.to_rows, be)
        self.to_image = functools.partial(fconv.to_image, be, n=g.n)  # (N, O, oh * ow)


class _FlatSteps:
    """The CPU's stride-1 layout: a column per padded pixel of the whole batch (M = N * Hp * Wp).

    Each kernel tap is then one contiguous run per channel (im2col and col2im copy and add long
    runs), at the price of junk columns where a window would wrap past a row or image edge. The
    junk columns of im2col hold neighbours' pixels; every product that reads them multiplies by
    zeros (to_rows writes zeros there) or lands in columns that to_image drops.
    """

    def __init__(self, be: Any, g: Window) -> None:
        self.g, self.xp, (self.hp, self.wp) = g, be.xp, g.frame()
        self.size = g.n * self.hp * self.wp
        # where each kernel tap's run starts in the frame, taps in (i, j) order
        self.offsets = [i * g.dh * self.wp + j * g.dw for i in range(g.kh) for j in range(g.kw)]

    def _frame(self, dtype: Any) -> Any:
        """Zeros (C, M + the last tap's offset): the padded batch, channel-major, a row each."""
        return self.xp.zeros((self.g.c, self.size + self.offsets[-1]), dtype=dtype)

    def _crop(self, a: Any, top: int, left: int, h: int, w: int) -> Any:
        """Rows (R, M or more) as an image (N, R, h, w), a view: the h x w pixels at (top, left)
        of each frame."""
        a = a[:, : self.size].reshape(a.shape[0], self.g.n, self.hp, self.wp)
        return a[:, :, top : top + h, left : left + w].transpose(1, 0, 2, 3)

    def im2col(self, x: Any) -> Any:
        g, frame = self.g, self._frame(x.dtype)
        self._crop(frame, g.pt, g.pl, g.h, g.w)[...] = x
        s_c, s_x = frame.strides
        taps = self.xp.lib.stride_tricks.as_strided(
            frame, (g.c, g.kh, g.kw, self.size), (s_c, g.dh * self.wp * s_x, g.dw * s_x, s_x)
        )
        return self.xp.ascontiguousarray(taps).reshape(g.c * g.kh * g.kw, self.size)

    def col2im(self, cols: Any) -> Any:
        """The adjoint of im2col; the junk columns of `cols` must be zero (products with zeros)."""
        g, frame = self.g, self._frame(cols.dtype)
        taps = cols.reshape(g.c, g.kh * g.kw, self.size)
        for k, offset in enumerate(self.offsets):
            frame[:, offset : offset + self.size] += taps[:, k]
        return self.xp.ascontiguousarray(self._crop(frame, g.pt, g.pl, g.h, g.w))

    def to_rows(self, y: Any, need_bias: bool = False, gbias: Any = None) -> tuple[Any, Any]:
        rows = self.xp.zeros((y.shape[1], self.size), dtype=y.dtype)
        self._crop(rows, 0, 0, self.g.oh, self.g.ow)[...] = y
        return rows, (rows.sum(axis=1, out=gbias) if need_bias else None)

    def to_image(self, y2: Any, bias: Any) -> Any:
        if bias is not None:
            y2 += bias[:, None]
        return self.xp.ascontiguousarray(self._crop(y2, 0, 0, self.g.oh, self.g.ow))


def _grouped(a: Any, groups: int) -> Any:
    """(R, M) -> (groups, R // groups, M): the rows of each group side by side (a view)."""
    return a.reshape(groups, a.shape[0] // groups, a.shape[1])


def _group_matmul(xp: Any, a: Any, b: Any, out: Any = None) -> Any:
    """(groups, m, k) @ (groups, k, n) as one 2-D matmul per group: (groups * m, n).

    The products go into `out` (groups, m, n) when given; sizes are spelled out (no -1), as n is
    0 for an empty batch.

    NumPy's stacked matmul leaves BLAS for a slow loop when an operand is a transposed view (as
    every backward product here is): 20x slower on (1, 32, 1536) @ (1, 1536, 144), measured. A
    2-D matmul passes the transpose to BLAS instead; groups are few, so the loop is short.
    """
    if out is None:
        out = xp.empty((a.shape[0], a.shape[1], b.shape[2]), dtype=xp.result_type(a, b))
    for i in range(a.shape[0]):
        xp.matmul(a[i], b[i], out=out[i])
    return out.reshape(a.shape[0] * a.shape[1], b.shape[2])


# ---- convolution --------------------------------------------------------------------------------


class _Convolution(Configured):
    """The steps Conv2d and ConvTranspose2d share. `geom` is the convolution's windows (for the
    transposed one: those of the convolution it is the adjoint of); w is kept as w3, (groups,
    rows / groups, columns / groups), rows being its first axis (the image side's channels)."""

    geom: Window
    groups: int

    def _start(self, x: Any, w: Any) -> None:
        """Choose the window steps (once per call) and keep w as w3."""
        g, be, o = self.geom, self.be, w.shape[0]  # o: the image side's channels
        # The flat layout saves on im2col/col2im, whose `rows` are the window side's channels *
        # kh * kw (twice with an input gradient), but each product with the o rows of the image
        # side carries its junk columns (hp * wp - oh * ow per image). Measured single-thread (3x3
        # kernels, 2x2 to 32x32 images, 1 to 128 channels), it pays when rows outnumber o and two
        # channels' taps, and o times the junk per image stays under 280 times oh.
        rows = w.shape[1] * self.groups * g.kh * g.kw * (2 if self.needs_input_grad[0] else 1)
        hp, wp = g.frame()
        flat = g.sh == g.sw == 1 and rows > max(o, 2 * g.kh * g.kw)
        flat = flat and o * (hp * wp - g.oh * g.ow) < 280 * g.oh and not fconv.applies(be, x.dtype)
        self.steps = _FlatSteps(be, g) if flat else _Steps(be, g)
        self.w3 = _grouped(w.reshape(w.shape[0], -1), self.groups)

    def _rows(self, y: Any, need_bias: bool = False) -> tuple[Any, Any]:
        """y (N, O, oh, ow) as grouped rows (groups, O/g, M), and its bias gradient if asked."""
        home = self.grad_home(2, y.dtype) if need_bias else None  # the bias's gradient home
        rows, gb = self.steps.to_rows(y, need_bias, home)
        return _grouped(rows, self.groups), gb

    def _correlate(self, cols: Any, bias: Any) -> Any:
        """w3 @ columns, as an image (N, rows of w, oh, ow), plus the bias when not None."""
        g, y2 = self.geom, _group_matmul(self.be.xp, self.w3, cols)
        return self.steps.to_image(y2, bias).reshape(g.n, y2.shape[0], g.oh, g.ow)

    def _spread(self, rows: Any) -> Any:
        """w3^T @ grouped rows, summed back onto the windows' image (col2im): the adjoint."""
        return self.steps.col2im(_group_matmul(self.be.xp, self.w3.transpose(0, 2, 1), rows))

    def _weight_grad(self, rows: Any, cols: Any) -> Any:
        """rows @ columns^T, into the weight's slot in a flat gradient buffer when it has one."""
        g, home = self.geom, self.grad_home(1, rows.dtype)
        out = None if home is None else home.reshape(self.w3.shape)
        gw = _group_matmul(self.be.xp, rows, cols.transpose(0, 2, 1), out)
        return gw.reshape(-1, g.c // self.groups, g.kh, g.kw) if home is None else home


@compute_widened
class Conv2d(_Convolution):
    """y = conv(x, w) + b as w (groups, O/g, C/g*kh*kw) @ im2col columns (groups, C/g*kh*kw, M)."""

    def forward(self, x: Any, w: Any, b: Any = None) -> Any:
        self._start(x, w)
        cols = _grouped(self.steps.im2col(x), self.groups)  # (groups, C/g * kh * kw, M)
        self.cols = cols if self.needs_input_grad[1] else None
        return self._correlate(cols, b)

    def backward(self, gy: Any) -> Any:
        need = self.needs_input_grad
        rows, gb = self._rows(gy, len(need) > 2 and need[2])
        gx = self._spread(rows) if need[0] else None
        gw = self._weight_grad(rows, self.cols) if need[1] else None
        return gx, gw, gb


@compute_widened
class ConvTranspose2d(_Convolution):
    """The adjoint of Conv2d in x: forward is Conv2d's input gradient (w^T x, then col2im), the
    backward Conv2d's forward on gy (im2col, then w @ columns) and the weight gradient.

    `geom` describes the convolution that maps the output (N, Cout, Ho, Wo) back to the input
    grid (N, Cin, H, W).
    """

    def forward(self, x: Any, w: Any, b: Any = None) -> Any:
        self._start(x, w)
        rows = self._rows(x)[0]  # (groups, Cin/g, M)
        self.x_rows = rows if self.needs_input_grad[1] else None
        y = self._spread(rows)  # (N, Cout, Ho, Wo)
        if b is not None:
            y += b[:, None, None]
        return y

    def backward(self, gy: Any) -> Any:
        need = self.needs_input_grad
        cols = _grouped(self.steps.im2col(gy), self.groups)  # (groups, Cout/g * kh * kw, M)
        gx = self._correlate(cols, None) if need[0] else None
        gw = self._weight_grad(self.x_rows, cols) if need[1] else None
        gb = gy.sum(axis=(0, 2, 3)) if len(need) > 2 and need[2] else None
        return gx, gw, gb


def _conv_pads(
    op: str, padding: Any, kernel: tuple, dilation: tuple, stride: tuple
) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) from an int, a pair, "valid" or "same" (as PyTorch splits it)."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(f"{op}: padding='same' is not supported for strided convolutions")
            th, tw = [d * (k - 1) for d, k in zip(dilation, kernel)]  # all the padding, per axis
            return (th // 2, th - th // 2, tw // 2, tw - tw // 2)
        raise ValueError(
            f"{op}: padding must be an int, a pair, 'valid' or 'same', got {padding!r}"
        )
    ph, pw = int_pair(padding, "padding", op, 0)
    return (ph, ph, pw, pw)


def _check_conv(
    op: str, x: Tensor, w: Tensor, bias: Tensor | None, groups: Any, transposed: bool
) -> int:
    """The checks conv2d and conv_transpose2d share (input, weight, groups, bias); Cout."""
    _check_input(op, x, "4-D input (N, C, H, W)")
    layout = "(Cin, Cout/groups, kh, kw)" if transposed else "(O, C/groups, kh, kw)"
    if w.ndim != 4:
        raise ValueError(f"{op}: weight must be 4-D {layout}, got shape {w.shape}")
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    # the weight's first axis is the one split into groups, for both kinds
    split, other = w.shape[0], w.shape[1] * groups
    cin, cout, what = (split, other, "input") if transposed else (other, split, "output")
    if x.shape[1] != cin:
        raise ValueError(
            f"{op}: input of shape {x.shape} has {x.shape[1]} channels, but weight {w.shape} with "
            f"groups={groups} expects {cin}"
        )
    if split % groups:
        raise ValueError(f"{op}: {split} {what} channels are not divisible by groups={groups}")
    if bias is not None and tuple(bias.shape) != (cout,):
        raise ValueError(f"{op}: bias of shape {bias.shape} does not match {cout} output channels")
    return cout


def _convolve(
    fn: type[_Convolution], op: str, x: Tensor, w: Tensor, b: Tensor | None, **params: Any
) -> Tensor:
    """Apply a convolution Function to the (autocast) input, weight and bias."""
    x, w, b = cast_inputs(op, x, w, b)
    return fn.apply(*((x, w) if b is None else (x, w, b)), **params)


@register(top=True)
@_unbatched
def conv2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> Tensor:
    """2-D convolution of input (N, C, H, W) with weight (O, C/groups, kh, kw), as PyTorch's."""
    op = "conv2d"
    _check_conv(op, input, weight, bias, groups, transposed=False)
    strides, dil = int_pair(stride, "stride", op, 1), int_pair(dilation, "dilation", op, 1)
    kernel = tuple(weight.shape[2:])
    pads = _conv_pads(op, padding, kernel, dil, strides)
    geom = _window(op, input, kernel, strides, pads, dil)
    return _convolve(Conv2d, op, input, weight, bias, geom=geom, groups=groups)


@register(top=True)
@_unbatched
def conv_transpose2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: int = 1,
    dilation: Any = 1,
) -> Tensor:
    """Transposed 2-D convolution of input (N, Cin, H, W) with weight (Cin, Cout/groups, kh, kw)."""
    op = "conv_transpose2d"
    cout = _check_conv(op, input, weight, bias, groups, transposed=True)
    strides, dil = int_pair(stride, "stride", op, 1), int_pair(dilation, "dilation", op, 1)
    pads = int_pair(padding, "padding", op, 0)
    extra = int_pair(output_padding, "output_padding", op, 0)
    n, _, h, w = input.shape
    kh, kw = weight.shape[2:]
    out = []  # the output's size per axis
    for dim, (size, k, s, p, o_p, d) in enumerate(zip((h, w), (kh, kw), strides, pads, extra, dil)):
        if o_p >= s and o_p >= d:
            raise ValueError(
                f"{op}: output_padding must be smaller than stride or dilation, got "
                f"output_padding={o_p}, stride={s}, dilation={d} (dim {dim})"
            )
        out.append((size - 1) * s - 2 * p + d * (k - 1) + o_p + 1)
    if min(out) <= 0:
        raise ValueError(
            f"{op}: input of spatial size ({h}, {w}) gives an empty output {tuple(out)} "
            f"with padding {pads}"
        )
    (ho, wo), far = out, [p + o_p for p, o_p in zip(pads, extra)]  # far: output_padding's side
    geom = Window(n, cout, ho, wo, kh, kw, *strides, *pads, *dil, h, w, *far)
    return _convolve(ConvTranspose2d, op, input, weight, bias, geom=geom, groups=groups)


# ---- pooling ------------------------------------------------------------------------------------


def _pool_window(
    op: str, x: Tensor, kernel_size: Any, stride: Any, padding: Any, dilation: Any, ceil_mode: bool
) -> Window:
    """Windows of a pooling op: its arguments checked, and at most half a window of padding."""
    _check_input(op, x, "3-D (C, H, W) or 4-D (N, C, H, W) input")
    kernel = int_pair(kernel_size, "kernel_size", op, 1)
    strides = kernel if stride is None or stride == [] else int_pair(stride, "stride", op, 1)
    pad, dil = int_pair(padding, "padding", op, 0), int_pair(dilation, "dilation", op, 1)
    # (avg pooling has no dilation: there the kernel size is the effective one)
    if any(p > (d * (k - 1) + 1) // 2 for p, k, d in zip(pad, kernel, dil)):
        raise ValueError(
            f"{op}: padding should be at most half of the effective kernel size, got "
            f"padding={pad}, kernel_size={kernel}, dilation={dil}"
        )
    return _window(op, x, kernel, strides, (pad[0], pad[0], pad[1], pad[1]), dil, ceil_mode)


class MaxPool2d(Configured):
    """Max over each window; the gradient goes to the first maximum of the window (as PyTorch)."""

    geom: Window

    def forward(self, x: Any) -> Any:
        # y, and the tap of each maximum where a gradient will need it
        y, self.idx = fconv.max_pool(self.be, x, self.geom, self.needs_input_grad[0])
        return y

    def backward(self, gy: Any) -> Any:
        return fconv.max_pool_backward(self.be, gy, self.idx, self.geom)


class AvgPool2d(Configured):
    """Mean over each window, divided by PyTorch's divisor (padding counted or not).

    `geom` sees each channel of each image as an image of one channel (n = N * C, c = 1): im2col
    gives the windows as (kh * kw, N * C * oh * ow), col2im spreads their gradients back.
    """

    geom: Window
    divisor: Any  # a number, or (oh, ow) on the input's device (see _avg_divisor)

    def forward(self, x: Any) -> Any:
        g = self.geom
        y = fconv.im2col(self.be, x.reshape(g.n, 1, g.h, g.w), g).sum(axis=0)
        y = y.reshape(x.shape[0], x.shape[1], g.oh, g.ow)
        y /= self.divisor
        return y

    def backward(self, gy: Any) -> Any:
        g = self.geom
        share = (gy / self.divisor).reshape(1, gy.size)
        cols = self.be.xp.broadcast_to(share, (g.kh * g.kw, gy.size))
        return fconv.col2im(self.be, cols, g).reshape(gy.shape[0], gy.shape[1], g.h, g.w)


@register(top=True)
@_unbatched
def max_pool2d(
    input: Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Tensor:
    """Max over kh x kw windows of (N, C, H, W); stride defaults to kernel_size."""
    op = "max_pool2d"
    if return_indices:
        raise NotImplementedError(f"{op}: return_indices=True is not supported in gnn")
    g = _pool_window(op, input, kernel_size, stride, padding, dilation, ceil_mode)
    return MaxPool2d.apply(input, geom=g)


def _avg_divisor(g: Window, count_include_pad: bool, x: Tensor) -> Any:
    """PyTorch's divisor per output position: window size clipped to input+padding (or input).

    One number when every window is full; else an (oh, ow) array cached on x's device, in its
    dtype (no copy per call)."""
    sizes = []
    for o, s, k, p, n in ((g.oh, g.sh, g.kh, g.pt, g.h), (g.ow, g.sw, g.kw, g.pl, g.w)):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, n + p)
        if not count_include_pad:  # only the input's own pixels count
            start, end = np.maximum(start, 0), np.minimum(end, n)
        sizes.append(end - start)
    div = np.outer(sizes[0], sizes[1]).astype(np.float64)
    if (div == div.flat[0]).all():
        return float(div.flat[0])
    return x._be.constant(tuple(div.ravel().tolist()), x.dtype).reshape(div.shape)


@register()
@_unbatched
def avg_pool2d(
    input: Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """Mean over kh x kw windows of (N, C, H, W); stride defaults to kernel_size."""
    op = "avg_pool2d"
    g = _pool_window(op, input, kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override is not None:
        if isinstance(divisor_override, bool) or divisor_override == 0:
            raise ValueError(
                f"{op}: divisor_override must be a non-zero number, got {divisor_override!r}"
            )
        divisor: Any = float(divisor_override)
    else:
        divisor = _avg_divisor(g, count_include_pad, input)
    return AvgPool2d.apply(input, geom=replace(g, n=g.n * g.c, c=1), divisor=divisor)
