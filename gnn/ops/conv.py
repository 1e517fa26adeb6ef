"""2-D convolution, transposed convolution, max and average pooling (NCHW, PyTorch's arguments).

Windows are read through strided views of the padded input and copied once into an im2col matrix,
so each convolution is one (grouped) matmul; gradients that fall on overlapping windows are summed
with one strided add per kernel position (col2im). No Python loop runs over pixels or images.
On a GPU (float32, float16) Conv2d, ConvTranspose2d and MaxPool2d run kernels/conv.cu instead: one
launch each for im2col, col2im, the layout changes around the matmul, max pooling both ways.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gnn.autograd import Function
from gnn.backend.fused import conv as fconv
from gnn.dtypes import is_floating
from gnn.ops.autocast import cast_inputs, compute_widened
from gnn.ops.registry import register
from gnn.tensor import Tensor

# ---- argument parsing ---------------------------------------------------------------------------


def _pair(value: Any, name: str, op: str, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints, each >= minimum, as a 2-tuple (or a ValueError naming the op)."""
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


def _check_input(op: str, x: Tensor, what: str = "input") -> None:
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D {what} (N, C, H, W), got shape {x.shape}")
    if not is_floating(x.dtype):
        raise TypeError(f"{op}: expected a floating-point {what}, got dtype {x.dtype}")


# ---- window geometry and the im2col / col2im helpers --------------------------------------------


class _Geometry:
    """Where the windows of a 2-D sliding op fall on an (N, C, H, W) image.

    pads = (top, bottom, left, right). `out` fixes the number of window positions (oh, ow)
    instead of deriving it from the padded size (transposed convolution needs that). With stride
    1, windows are read from the padded batch flattened per channel ("flat" layout): a column per
    padded pixel (N * Hp * Wp), so each kernel tap is one contiguous run per channel, at the price
    of junk columns where a window would wrap past a row or image edge. The junk columns of the
    cols array hold neighbours' pixels; every product that reads them multiplies by zeros or
    lands in output columns that are dropped.
    """

    def __init__(
        self,
        shape: tuple,
        kernel: tuple[int, int],
        stride: tuple[int, int],
        pads: tuple[int, int, int, int],
        dilation: tuple[int, int],
        out: tuple[int, int] | None = None,
        flat_ok: bool = True,
    ) -> None:
        self.n, self.c, self.h, self.w = shape
        self.kh, self.kw = kernel
        self.sh, self.sw = stride
        self.dh, self.dw = dilation
        self.pt, self.pb, self.pl, self.pr = pads
        self.hp = self.h + self.pt + self.pb
        self.wp = self.w + self.pl + self.pr
        if out is None:
            out = (
                (self.hp - self.dh * (self.kh - 1) - 1) // self.sh + 1,
                (self.wp - self.dw * (self.kw - 1) - 1) // self.sw + 1,
            )
        self.oh, self.ow = out
        self.flat = flat_ok and self.sh == 1 and self.sw == 1
        # rows and columns per image in the cols layout (the flat one counts junk ones)
        self.ohe = self.hp if self.flat else self.oh
        self.owe = self.wp if self.flat else self.ow
        # flat layout: how far the last tap's run starts from the first's
        self.reach = (self.kh - 1) * self.dh * self.wp + (self.kw - 1) * self.dw

    @property
    def kk(self) -> int:
        return self.kh * self.kw

    @property
    def padded(self) -> bool:
        return bool(self.pt or self.pb or self.pl or self.pr)


def _pad(xp: Any, x: Any, g: _Geometry, fill: float) -> Any:
    """x (N, C, H, W) inside a (N, C, Hp, Wp) frame of `fill` (x itself when there is no frame)."""
    if not g.padded:
        return x
    if fill == 0.0:
        out = xp.zeros((g.n, g.c, g.hp, g.wp), dtype=x.dtype)
    else:
        out = xp.full((g.n, g.c, g.hp, g.wp), fill, dtype=x.dtype)
    out[:, :, g.pt : g.pt + g.h, g.pl : g.pl + g.w] = x
    return out


def _window_view(xp: Any, xpad: Any, g: _Geometry) -> Any:
    """A strided view of the windows of xpad (N, C, Hp, Wp): (N, C, kh, kw, oh, ow)."""
    s_n, s_c, s_h, s_w = xpad.strides
    return xp.lib.stride_tricks.as_strided(
        xpad,
        (g.n, g.c, g.kh, g.kw, g.oh, g.ow),
        (s_n, s_c, g.dh * s_h, g.dw * s_w, g.sh * s_h, g.sw * s_w),
    )


def _flat_frame(xp: Any, g: _Geometry, dtype: Any) -> Any:
    """Zeros (C, N * Hp * Wp + reach): the padded batch, channel-major, one row per channel."""
    return xp.zeros((g.c, g.n * g.hp * g.wp + g.reach), dtype=dtype)


def _im2col(xp: Any, x: Any, g: _Geometry) -> Any:
    """The columns of x: (C, kh, kw, N, ohe * owe), one copy of the windows."""
    if g.flat:
        frame = _flat_frame(xp, g, x.dtype)
        inner = frame[:, : g.n * g.hp * g.wp].reshape(g.c, g.n, g.hp, g.wp)
        inner[:, :, g.pt : g.pt + g.h, g.pl : g.pl + g.w] = x.transpose(1, 0, 2, 3)
        s_c, s_x = frame.strides
        taps = xp.lib.stride_tricks.as_strided(
            frame,
            (g.c, g.kh, g.kw, g.n * g.hp * g.wp),
            (s_c, g.dh * g.wp * s_x, g.dw * s_x, s_x),
        )
        return xp.ascontiguousarray(taps).reshape(g.c, g.kh, g.kw, g.n, g.hp * g.wp)
    view = _window_view(xp, _pad(xp, x, g, 0.0), g)
    cols = xp.empty((g.c, g.kh, g.kw, g.n, g.oh * g.ow), dtype=x.dtype)
    cols.reshape(g.c, g.kh, g.kw, g.n, g.oh, g.ow)[...] = view.transpose(1, 2, 3, 0, 4, 5)
    return cols


def _col2im(xp: Any, cols: Any, g: _Geometry) -> Any:
    """The adjoint of _im2col: sum columns (C, kh, kw, N, ohe * owe) back onto x (N, C, H, W).

    In the flat layout the junk columns of `cols` must be zero (they are: they come from
    products with zeros there).
    """
    if g.flat:
        frame = _flat_frame(xp, g, cols.dtype)
        size = g.n * g.hp * g.wp
        taps = cols.reshape(g.c, g.kh, g.kw, size)
        for i in range(g.kh):
            for j in range(g.kw):
                off = i * g.dh * g.wp + j * g.dw
                frame[:, off : off + size] += taps[:, i, j]
        gpad = frame[:, :size].reshape(g.c, g.n, g.hp, g.wp)
    else:
        gpad = xp.zeros((g.c, g.n, g.hp, g.wp), dtype=cols.dtype)  # channel-major, like cols
        cols6 = cols.reshape(g.c, g.kh, g.kw, g.n, g.oh, g.ow)
        h_end, w_end = g.sh * (g.oh - 1) + 1, g.sw * (g.ow - 1) + 1
        for i in range(g.kh):
            for j in range(g.kw):
                r, c = i * g.dh, j * g.dw
                gpad[:, :, r : r + h_end : g.sh, c : c + w_end : g.sw] += cols6[:, i, j]
    inner = gpad[:, :, g.pt : g.pt + g.h, g.pl : g.pl + g.w]
    return xp.ascontiguousarray(inner.transpose(1, 0, 2, 3))


def _to_cols_layout(xp: Any, y: Any, g: _Geometry) -> Any:
    """y (N, O, oh, ow) as (O, N * ohe * owe), zero in the junk columns of the flat layout."""
    n, o = y.shape[0], y.shape[1]
    if g.ohe == g.oh and g.owe == g.ow:
        out = xp.empty((o, n, g.oh, g.ow), dtype=y.dtype)
    else:
        out = xp.zeros((o, n, g.ohe, g.owe), dtype=y.dtype)
    out[:, :, : g.oh, : g.ow] = y.transpose(1, 0, 2, 3)
    return out.reshape(o, n * g.ohe * g.owe)


def _from_cols_layout(xp: Any, y2: Any, g: _Geometry) -> Any:
    """y2 (O, N * ohe * owe) as a contiguous (N, O, oh, ow), junk columns dropped."""
    y4 = y2.reshape(y2.shape[0], g.n, g.ohe, g.owe)[:, :, : g.oh, : g.ow]
    return xp.ascontiguousarray(y4.transpose(1, 0, 2, 3))


def _window(g: _Geometry) -> fconv.Window:
    """The geometry as the GPU kernels take it (kernels/conv.cu)."""
    return fconv.Window(
        g.n, g.c, g.h, g.w, g.kh, g.kw, g.sh, g.sw, g.pt, g.pl, g.dh, g.dw, g.oh, g.ow
    )


def _grouped(a: Any, groups: int) -> Any:
    """(R, M) -> (groups, R // groups, M): the rows of each group side by side (a view)."""
    return a.reshape(groups, a.shape[0] // groups, a.shape[1])


def _group_matmul(xp: Any, a: Any, b: Any, out: Any = None) -> Any:
    """(groups, m, k) @ (groups, k, n) as one 2-D matmul per group, into `out` when given.

    NumPy's stacked matmul leaves BLAS for a slow loop when an operand is a transposed view (as
    every backward product here is): 20x slower on (1, 32, 1536) @ (1, 1536, 144), measured. A
    2-D matmul passes the transpose to BLAS instead; groups are few, so the loop is short.
    """
    if out is None:
        if a.shape[0] == 1:
            return (a[0] @ b[0])[None]
        out = xp.empty((a.shape[0], a.shape[1], b.shape[2]), dtype=xp.result_type(a, b))
    for i in range(a.shape[0]):
        xp.matmul(a[i], b[i], out=out[i])
    return out


# ---- convolution --------------------------------------------------------------------------------


@compute_widened
class Conv2d(Function):
    """y = conv(x, w) + b as w (groups, O/g, C/g*kh*kw) @ im2col columns (groups, C/g*kh*kw, M)."""

    def __init__(self, stride: tuple, pads: tuple, dilation: tuple, groups: int) -> None:
        self.stride, self.pads, self.dilation, self.groups = stride, pads, dilation, groups

    def forward(self, x: Any, w: Any, b: Any = None) -> Any:
        xp, gr = self.be.xp, self.groups
        o, _, kh, kw = w.shape
        self.window: fconv.Window | None = None
        if x.size and fconv.applies(self.be, x.dtype):
            return self._forward_kernels(x, w, b)
        # The flat layout saves on im2col/col2im (C*kh*kw rows, twice with an input gradient) but
        # costs junk columns and slower layout changes of the output (O rows, twice): measured.
        rows = x.shape[1] * kh * kw * (2 if self.needs_input_grad[0] else 1)
        g = _Geometry(
            x.shape, (kh, kw), self.stride, self.pads, self.dilation, flat_ok=rows > 2 * o
        )
        cols = _im2col(xp, x, g)  # (C, kh, kw, N, P)
        # (groups, C/g*kk, M), sizes spelled out (no -1): M is 0 for an empty batch
        cols = cols.reshape(gr, g.c * g.kk // gr, cols.shape[-2] * cols.shape[-1])
        w3 = w.reshape(gr, o // gr, -1)  # (groups, O/g, C/g*kk)
        y2 = _group_matmul(xp, w3, cols).reshape(o, -1)  # (O, M)
        if b is not None:
            y2 += b[:, None]
        self.geom, self.w3 = g, w3
        self.cols: Any = cols if self.needs_input_grad[1] else None  # an array, or None
        return _from_cols_layout(xp, y2, g)

    def _forward_kernels(self, x: Any, w: Any, b: Any) -> Any:
        """The GPU path (kernels/conv.cu): im2col, one matmul, the layout change with the bias."""
        xp, gr, be = self.be.xp, self.groups, self.be
        o, _, kh, kw = w.shape
        g = _Geometry(x.shape, (kh, kw), self.stride, self.pads, self.dilation, flat_ok=False)
        win = _window(g)
        cols = fconv.im2col(be, x, win)  # (C*kk, N*P)
        cols = cols.reshape(gr, g.c * g.kk // gr, cols.shape[-1])
        w3 = w.reshape(gr, o // gr, -1)  # (groups, O/g, C/g*kk)
        y2 = _group_matmul(xp, w3, cols).reshape(o, -1)  # (O, N*P)
        y = fconv.to_image(be, y2, b, g.n).reshape(g.n, o, g.oh, g.ow)
        self.geom, self.w3, self.window = g, w3, win
        self.cols = cols if self.needs_input_grad[1] else None
        return y

    def _backward_kernels(self, gy: Any, win: fconv.Window) -> Any:
        """The GPU path: gy's layout change with the bias sum, two matmuls, one col2im gather."""
        xp, g, gr, w3, be = self.be.xp, self.geom, self.groups, self.w3, self.be
        need_bias = len(self.needs_input_grad) > 2 and self.needs_input_grad[2]
        # (O, N*P) and the bias gradient, that into the bias's gradient home when it has one
        gy2, gb = fconv.to_rows(
            be, gy, need_bias, self.grad_home(2, gy.dtype) if need_bias else None
        )
        gx = gw = None
        gy3 = _grouped(gy2, gr)  # (groups, O/g, M)
        if self.needs_input_grad[0]:
            gcols = _group_matmul(xp, w3.transpose(0, 2, 1), gy3)
            gx = fconv.col2im(be, gcols.reshape(g.c * g.kk, -1), win)
        if self.needs_input_grad[1]:
            home = self.grad_home(1, gy2.dtype)  # the weight's slot in a flat gradient buffer
            out = None if home is None else home.reshape(gr, -1, self.cols.shape[1])
            gw = _group_matmul(xp, gy3, self.cols.transpose(0, 2, 1), out)
            gw = gw.reshape(-1, g.c // gr, g.kh, g.kw) if home is None else home
        return gx, gw, gb

    def backward(self, gy: Any) -> Any:
        if self.window is not None:
            return self._backward_kernels(gy, self.window)
        xp, g, gr, w3 = self.be.xp, self.geom, self.groups, self.w3
        gy2 = _grouped(_to_cols_layout(xp, gy, g), gr)  # (groups, O/g, M)
        gx = gw = gb = None
        if self.needs_input_grad[0]:
            gcols = _group_matmul(xp, w3.transpose(0, 2, 1), gy2)
            gcols = gcols.reshape(g.c, g.kh, g.kw, g.n, g.ohe * g.owe)
            gx = _col2im(xp, gcols, g)
        if self.needs_input_grad[1]:
            gw = _group_matmul(xp, gy2, self.cols.transpose(0, 2, 1))
            gw = gw.reshape(-1, g.c // gr, g.kh, g.kw)
        if len(self.needs_input_grad) > 2 and self.needs_input_grad[2]:
            gb = gy.sum(axis=(0, 2, 3))
        return gx, gw, gb


@compute_widened
class ConvTranspose2d(Function):
    """The adjoint of Conv2d in x: forward is col2im of w^T x, backward is an im2col + matmul.

    `geom` describes the convolution that maps the output (N, Cout, Ho, Wo) back to the input
    grid (N, Cin, H, W); output_padding is extra bottom/right padding of that convolution.
    """

    def __init__(self, geom: _Geometry, groups: int) -> None:
        self.geom, self.groups = geom, groups

    def forward(self, x: Any, w: Any, b: Any = None) -> Any:
        xp, g, gr = self.be.xp, self.geom, self.groups
        self.window: fconv.Window | None = None
        if x.size and fconv.applies(self.be, x.dtype):
            return self._forward_kernels(x, w, b)
        x2 = _grouped(_to_cols_layout(xp, x, g), gr)  # (groups, Cin/g, M)
        w3 = w.reshape(gr, w.shape[0] // gr, -1)  # (groups, Cin/g, Cout/g*kk)
        gcols = _group_matmul(xp, w3.transpose(0, 2, 1), x2)
        gcols = gcols.reshape(g.c, g.kh, g.kw, g.n, g.ohe * g.owe)
        y = _col2im(xp, gcols, g)  # (N, Cout, Ho, Wo)
        if b is not None:
            y += b[:, None, None]
        self.w3 = w3
        self.x2 = x2 if self.needs_input_grad[1] else None
        return y

    def _forward_kernels(self, x: Any, w: Any, b: Any) -> Any:
        """The GPU path (kernels/conv.cu): x's layout change, one matmul, one col2im gather."""
        be, g, gr = self.be, self.geom, self.groups
        win = _window(g)
        x3 = _grouped(fconv.to_rows(be, x)[0], gr)  # (groups, Cin/g, M)
        w3 = w.reshape(gr, w.shape[0] // gr, -1)  # (groups, Cin/g, Cout/g*kk)
        gcols = _group_matmul(be.xp, w3.transpose(0, 2, 1), x3)
        y = fconv.col2im(be, gcols.reshape(g.c * g.kk, -1), win)  # (N, Cout, Ho, Wo)
        if b is not None:
            y += b[:, None, None]
        self.w3, self.window = w3, win
        self.x2 = x3 if self.needs_input_grad[1] else None
        return y

    def _backward_kernels(self, gy: Any, win: fconv.Window) -> Any:
        """The GPU path: one im2col of gy, two matmuls, the input gradient's layout change."""
        be, g, gr, w3 = self.be, self.geom, self.groups, self.w3
        cols = fconv.im2col(be, gy, win)  # (Cout*kk, N*H*W)
        cols = cols.reshape(gr, g.c * g.kk // gr, cols.shape[-1])
        gx = gw = gb = None
        if self.needs_input_grad[0]:
            y2 = _group_matmul(be.xp, w3, cols)
            y2 = y2.reshape(y2.shape[0] * y2.shape[1], cols.shape[-1])
            gx = fconv.to_image(be, y2, None, g.n).reshape(g.n, -1, g.oh, g.ow)
        if self.needs_input_grad[1]:
            gw = _group_matmul(be.xp, self.x2, cols.transpose(0, 2, 1))
            gw = gw.reshape(-1, g.c // gr, g.kh, g.kw)
        if len(self.needs_input_grad) > 2 and self.needs_input_grad[2]:
            gb = gy.sum(axis=(0, 2, 3))
        return gx, gw, gb

    def backward(self, gy: Any) -> Any:
        if self.window is not None:
            return self._backward_kernels(gy, self.window)
        xp, g, gr, w3 = self.be.xp, self.geom, self.groups, self.w3
        cols = _im2col(xp, gy, g)  # (Cout, kh, kw, N, P)
        # (groups, Cout/g*kk, M), sizes spelled out: M is 0 for an empty batch
        cols = cols.reshape(gr, g.c * g.kk // gr, cols.shape[-2] * cols.shape[-1])
        gx = gw = gb = None
        if self.needs_input_grad[0]:
            y2 = _group_matmul(xp, w3, cols)
            y2 = y2.reshape(y2.shape[0] * y2.shape[1], cols.shape[-1])
            gx = _from_cols_layout(xp, y2, g)
        if self.needs_input_grad[1]:
            gw = _group_matmul(xp, self.x2, cols.transpose(0, 2, 1))
            gw = gw.reshape(-1, g.c // gr, g.kh, g.kw)
        if len(self.needs_input_grad) > 2 and self.needs_input_grad[2]:
            gb = gy.sum(axis=(0, 2, 3))
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
            total = [d * (k - 1) for d, k in zip(dilation, kernel)]
            return (
                total[0] // 2,
                total[0] - total[0] // 2,
                total[1] // 2,
                total[1] - total[1] // 2,
            )
        raise ValueError(
            f"{op}: padding must be an int, a pair, 'valid' or 'same', got {padding!r}"
        )
    ph, pw = _pair(padding, "padding", op, 0)
    return (ph, ph, pw, pw)


def _check_bias(op: str, bias: Tensor | None, n: int) -> None:
    if bias is not None and tuple(bias.shape) != (n,):
        raise ValueError(f"{op}: bias of shape {bias.shape} does not match {n} output channels")


@register(top=True)
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
    if input.ndim == 3:  # unbatched (C, H, W)
        out = conv2d(input.unsqueeze(0), weight, bias, stride, padding, dilation, groups)
        return out.squeeze(0)
    _check_input(op, input)
    if weight.ndim != 4:
        raise ValueError(
            f"{op}: weight must be 4-D (O, C/groups, kh, kw), got shape {weight.shape}"
        )
    stride, dilation = _pair(stride, "stride", op, 1), _pair(dilation, "dilation", op, 1)
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    o, cg, kh, kw = weight.shape
    n, c, h, w = input.shape
    if c != cg * groups:
        raise ValueError(
            f"{op}: input of shape {input.shape} has {c} channels, but weight {weight.shape} with "
            f"groups={groups} expects {cg * groups}"
        )
    if o % groups:
        raise ValueError(f"{op}: {o} output channels are not divisible by groups={groups}")
    _check_bias(op, bias, o)
    pads = _conv_pads(op, padding, (kh, kw), dilation, stride)
    eh, ew = dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1
    if h + pads[0] + pads[1] < eh or w + pads[2] + pads[3] < ew:
        raise ValueError(
            f"{op}: input of spatial size ({h}, {w}) with padding {pads} is smaller than the "
            f"(dilated) kernel ({eh}, {ew})"
        )
    input, weight, bias = cast_inputs("conv2d", input, weight, bias)
    args = (input, weight) if bias is None else (input, weight, bias)
    return Conv2d.apply(*args, stride=stride, pads=pads, dilation=dilation, groups=groups)


@register(top=True)
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
    if input.ndim == 3:  # unbatched (C, H, W)
        out = conv_transpose2d(
            input.unsqueeze(0), weight, bias, stride, padding, output_padding, groups, dilation
        )
        return out.squeeze(0)
    _check_input(op, input)
    if weight.ndim != 4:
        raise ValueError(
            f"{op}: weight must be 4-D (Cin, Cout/groups, kh, kw), got shape {weight.shape}"
        )
    stride, dilation = _pair(stride, "stride", op, 1), _pair(dilation, "dilation", op, 1)
    ph, pw = _pair(padding, "padding", op, 0)
    oph, opw = _pair(output_padding, "output_padding", op, 0)
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    for o_pad, s, d, axis in ((oph, stride[0], dilation[0], 0), (opw, stride[1], dilation[1], 1)):
        if o_pad >= s and o_pad >= d:
            raise ValueError(
                f"{op}: output_padding must be smaller than stride or dilation, got "
                f"output_padding={o_pad}, stride={s}, dilation={d} (dim {axis})"
            )
    cin, cout_g, kh, kw = weight.shape
    n, c, h, w = input.shape
    if c != cin:
        raise ValueError(
            f"{op}: input of shape {input.shape} has {c} channels, but weight {weight.shape} "
            f"expects {cin}"
        )
    if cin % groups:
        raise ValueError(f"{op}: {cin} input channels are not divisible by groups={groups}")
    cout = cout_g * groups
    _check_bias(op, bias, cout)
    ho = (h - 1) * stride[0] - 2 * ph + dilation[0] * (kh - 1) + oph + 1
    wo = (w - 1) * stride[1] - 2 * pw + dilation[1] * (kw - 1) + opw + 1
    if ho <= 0 or wo <= 0:
        raise ValueError(
            f"{op}: input of spatial size ({h}, {w}) gives an empty output ({ho}, {wo}) "
            f"with padding ({ph}, {pw})"
        )
    geom = _Geometry(
        (n, cout, ho, wo), (kh, kw), stride, (ph, ph + oph, pw, pw + opw), dilation, out=(h, w)
    )
    input, weight, bias = cast_inputs("conv_transpose2d", input, weight, bias)
    args = (input, weight) if bias is None else (input, weight, bias)
    return ConvTranspose2d.apply(*args, geom=geom, groups=groups)


# ---- pooling ------------------------------------------------------------------------------------


def _pool_geometry(
    op: str,
    x: Tensor,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    ceil_mode: bool,
    half_of: str,
) -> _Geometry:
    """Window geometry of a pooling op, with PyTorch's output size rule (ceil_mode included)."""
    kernel = _pair(kernel_size, "kernel_size", op, 1)
    stride = kernel if stride is None or stride == [] else _pair(stride, "stride", op, 1)
    pad = _pair(padding, "padding", op, 0)
    dil = _pair(dilation, "dilation", op, 1)
    n, c, h, w = x.shape
    out, extra = [], []
    for size, k, s, p, d in zip((h, w), kernel, stride, pad, dil):
        eff = d * (k - 1) + 1
        limit = eff // 2 if half_of else k // 2
        if p > limit:
            raise ValueError(
                f"{op}: padding should be at most half of the {half_of}kernel size, got "
                f"padding={pad}, kernel_size={kernel}, dilation={dil}"
            )
        span = size + 2 * p - eff
        o = (span + (s - 1 if ceil_mode else 0)) // s + 1
        if ceil_mode and (o - 1) * s >= size + p:  # the last window must start inside the input
            o -= 1
        if o <= 0:  # (in ceil_mode a window may be wider than the padded input, as in PyTorch)
            raise ValueError(
                f"{op}: input of spatial size ({h}, {w}) is too small for kernel_size={kernel}, "
                f"dilation={dil}, padding={pad}"
            )
        out.append(o)
        extra.append(max(0, (o - 1) * s + eff - size - 2 * p))  # ceil_mode's overhang
    pads = (pad[0], pad[0] + extra[0], pad[1], pad[1] + extra[1])
    return _Geometry((n, c, h, w), kernel, stride, pads, dil, out=tuple(out), flat_ok=False)


def _pool_windows(xp: Any, x: Any, g: _Geometry, fill: float) -> Any:
    """The windows of x copied to a contiguous (kh * kw, N * C * oh * ow) array."""
    view = _window_view(xp, _pad(xp, x, g, fill), g)  # (N, C, kh, kw, oh, ow)
    return xp.ascontiguousarray(view.transpose(2, 3, 0, 1, 4, 5)).reshape(g.kk, -1)


def _unpool(xp: Any, gwin: Any, g: _Geometry) -> Any:
    """Sum per-window gradients (kh, kw, N, C, oh, ow) back onto the input (N, C, H, W)."""
    gpad = xp.zeros((g.n, g.c, g.hp, g.wp), dtype=gwin.dtype)
    disjoint = g.sh >= g.dh * (g.kh - 1) + 1 and g.sw >= g.dw * (g.kw - 1) + 1
    if disjoint:  # every input pixel is in at most one window: one strided assignment
        s_n, s_c, s_h, s_w = gpad.strides
        view = xp.lib.stride_tricks.as_strided(
            gpad,
            (g.kh, g.kw, g.n, g.c, g.oh, g.ow),
            (g.dh * s_h, g.dw * s_w, s_n, s_c, g.sh * s_h, g.sw * s_w),
        )
        view[...] = gwin
    else:
        h_end, w_end = g.sh * (g.oh - 1) + 1, g.sw * (g.ow - 1) + 1
        for i in range(g.kh):
            for j in range(g.kw):
                r, c = i * g.dh, j * g.dw
                gpad[:, :, r : r + h_end : g.sh, c : c + w_end : g.sw] += gwin[i, j]
    if not g.padded:
        return gpad
    return xp.ascontiguousarray(gpad[:, :, g.pt : g.pt + g.h, g.pl : g.pl + g.w])


class MaxPool2d(Function):
    """Max over each window; the gradient goes to the first maximum of the window (as PyTorch)."""

    def __init__(self, geom: _Geometry) -> None:
        self.geom = geom

    def forward(self, x: Any) -> Any:
        xp, g = self.be.xp, self.geom
        self.idx: Any = None
        if x.size and fconv.applies(self.be, x.dtype):  # one kernel: the max and its tap
            y, self.idx = fconv.max_pool(self.be, x, _window(g))
            return y
        win = _pool_windows(xp, x, g, -math.inf)  # (kk, M)
        y = win.max(axis=0)
        self.win, self.y = win, y
        return y.reshape(g.n, g.c, g.oh, g.ow)

    def backward(self, gy: Any) -> Any:
        if self.idx is not None:  # one gather kernel: each pixel sums the windows it is the max of
            return fconv.max_pool_backward(self.be, gy, self.idx, _window(self.geom))
        xp, g, win, y = self.be.xp, self.geom, self.win, self.y
        gflat = gy.reshape(-1)
        gwin = xp.empty(win.shape, dtype=gy.dtype)
        taken = None
        for k in range(g.kk):  # the first tap that equals the max takes the gradient
            hit = win[k] == y
            if taken is None:
                taken = hit
            else:
                hit &= ~taken
                taken |= hit
            xp.multiply(gflat, hit, out=gwin[k])
        return _unpool(xp, gwin.reshape(g.kh, g.kw, g.n, g.c, g.oh, g.ow), g)


class AvgPool2d(Function):
    """Mean over each window, divided by PyTorch's divisor (padding counted or not)."""

    def __init__(self, geom: _Geometry, divisor: Any) -> None:
        self.geom, self.divisor = geom, divisor  # divisor: (oh, ow) host array or a number

    def forward(self, x: Any) -> Any:
        xp, g = self.be.xp, self.geom
        div = self.divisor
        if isinstance(div, np.ndarray):  # cached on the device: no copy per call
            div = self.be.constant(tuple(div.ravel().tolist()), x.dtype).reshape(div.shape)
            self.divisor = div
        y = _pool_windows(xp, x, g, 0.0).sum(axis=0).reshape(g.n, g.c, g.oh, g.ow)
        y /= div
        return y

    def backward(self, gy: Any) -> Any:
        xp, g = self.be.xp, self.geom
        share = gy / self.divisor  # (N, C, oh, ow)
        gwin = xp.broadcast_to(share, (g.kh, g.kw) + share.shape)
        return _unpool(xp, gwin, g)


def _check_pool_input(op: str, x: Tensor) -> None:
    if x.ndim not in (3, 4):
        raise ValueError(
            f"{op}: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape {x.shape}"
        )
    if not is_floating(x.dtype):
        raise TypeError(f"{op}: expected a floating-point input, got dtype {x.dtype}")


@register(top=True)
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
    _check_pool_input(op, input)
    if return_indices:
        raise NotImplementedError(f"{op}: return_indices=True is not supported in gnn")
    if input.ndim == 3:
        out = max_pool2d(input.unsqueeze(0), kernel_size, stride, padding, dilation, ceil_mode)
        return out.squeeze(0)
    g = _pool_geometry(op, input, kernel_size, stride, padding, dilation, ceil_mode, "effective ")
    return MaxPool2d.apply(input, geom=g)


def _avg_divisor(g: _Geometry, pad: tuple, count_include_pad: bool) -> np.ndarray:
    """PyTorch's divisor per output position: window size clipped to input+padding (or input)."""
    sizes = []
    for o, s, k, p, n in ((g.oh, g.sh, g.kh, pad[0], g.h), (g.ow, g.sw, g.kw, pad[1], g.w)):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, n + p)
        if count_include_pad:
            sizes.append(end - start)
        else:
            sizes.append(np.minimum(end, n) - np.maximum(start, 0))
    return np.outer(sizes[0], sizes[1]).astype(np.float64)


@register()
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
    _check_pool_input(op, input)
    if input.ndim == 3:
        out = avg_pool2d(
            input.unsqueeze(0), kernel_size, stride, padding, ceil_mode, count_include_pad,
            divisor_override,
        )  # fmt: skip
        return out.squeeze(0)
    g = _pool_geometry(op, input, kernel_size, stride, padding, 1, ceil_mode, "")
    if divisor_override is not None:
        if isinstance(divisor_override, bool) or divisor_override == 0:
            raise ValueError(
                f"{op}: divisor_override must be a non-zero number, got {divisor_override!r}"
            )
        divisor: Any = float(divisor_override)
    else:
        pad = _pair(padding, "padding", op, 0)
        divisor = _avg_divisor(g, pad, count_include_pad)
        if divisor.size and (divisor == divisor.flat[0]).all():
            divisor = float(divisor.flat[0])  # every window full: one number
    return AvgPool2d.apply(input, geom=g, divisor=divisor)
