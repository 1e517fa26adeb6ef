"""Recurrent layers as one Function per layer and direction: Elman RNN (tanh/relu), LSTM, GRU.

The input projection of all time steps is done up front; the loop runs over time only, with one
recurrent matmul and a few elementwise ops per step. Backward goes through time by hand and
collects the weight gradients in one matmul each at the end. The LSTM keeps its gates as
separate (B, H) blocks (see _lstm_forward); RNN and GRU work on (B, gates * H) rows. Gate order
and formulas are PyTorch's: LSTM (i, f, g, o), GRU (r, z, n) with
n = tanh(W_in x + b_in + r * (W_hn h + b_hn)).

gnn.nn.rnn_cells writes the same cells in primitives: the spec this op is tested against
(tests/test_rnn_cells.py). This hand-written path stays because it measures about three times as
fast as the primitive cells on a training step (T = 50, B = 32, I = 32, H = 64, every mode).

On a GPU the LSTM runs step by step through the fused cell kernels instead (gnn.backend.fused.lstm,
kernels/lstm_cell.cu): per step one cuBLAS matmul and one kernel each way, so about 4 launches per
step and layer where the NumPy loop above would make about 45.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from gnn.autograd import Function
from gnn.backend.fused import lstm as fused_lstm
from gnn.ops._util import column_sums
from gnn.tensor import Tensor

GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}
# PyTorch's LSTM gate blocks, in order, and those whose gradient is (gradient of c) * coefficient.
_I, _F, _G, _O = range(4)
_THROUGH_C = slice(_I, _G + 1)
# The LSTM loop's gate order (sigmoid gates first: i, f, o, g) and each gate's input scale.
_LSTM_LOOP_ORDER = (_I, _F, _O, _G)
_LSTM_LOOP_SCALE = (0.5, 0.5, 0.5, 1.0)
# From this batch size up, the LSTM's input projection runs as T * 4 small matmuls (one batched
# call) straight into its step-major layout; below it, one big matmul and a transposed copy win
# (NumPy, 2 vCPU: 0.35 against 0.15 ms at T = 200, B = 1; 0.28 against 0.60 ms at B = 16).
_BATCHED_PROJECTION_MIN = 8


class Inputs(NamedTuple):
    """The op's inputs (or their gradients, or needs_input_grad) by name; absent ones are None."""

    x: Any
    h0: Any
    c0: Any
    w_ih: Any
    w_hh: Any
    b_ih: Any
    b_hh: Any


class Through(NamedTuple):
    """What a mode's backward through time gives: the gradients of the input pre-activations
    (x W_ih^T + b_ih) and of the recurrent ones (h W_hh^T + b_hh), both (T, B, G*H) (one array
    when they are equal), and of the initial states."""

    d_ih: Any
    d_hh: Any
    gh0: Any
    gc0: Any = None


class LstmSaved(NamedTuple):
    """The LSTM forward's activations for backward (loop gate order i, f, o, g)."""

    acts: Any  # (T, 4, B, H): the gates after their nonlinearity
    cs: Any  # (T, B, H): c after each step
    tcs: Any  # (T, B, H): tanh(c) after each step
    prev_cells: Any  # (T, B, H): c each step started from, or None (then from cs and c0)
    c0: Any


class LstmCells(NamedTuple):
    """The fused LSTM forward's activations for backward (gate order i, f, g, o)."""

    gates: Any  # (T, B, 4H): the gates after their nonlinearity, per step
    cells: list  # c after step t, (B, H) each (the last step's is row T of the output)
    c0: Any


class GruSaved(NamedTuple):
    """The GRU forward's activations for backward."""

    acts: Any  # (T, B, 3H): r, z after their sigmoid, n after its tanh
    hwn: Any  # (T, B, H): W_hn h + b_hn per step


def _column_sums_twice(be: Any, a: Any, homes: tuple[Any, Any]) -> tuple[Any, Any]:
    """Two separate arrays of the column sums of 2-D `a` (b_ih's and b_hh's gradients when they are
    equal): one matmul of (2, rows) ones for float32/64, where one array handed to both inputs
    would cost autograd a copy. When both gradient homes lie in one buffer (the optimizer's flat
    one), the sums go there: the matmul's own output when they are back to back, else one copy."""
    rows = a.shape[0]
    if a.dtype.kind == "f" and a.dtype.itemsize >= 4:
        ones = be.ones_vector(2 * rows, a.dtype).reshape(2, rows)
        pair = _pair_view(be.xp, *homes)
        if pair is None:
            both = ones @ a
            return both[0], both[1]
        if pair.flags.c_contiguous:
            be.xp.matmul(ones, a, out=pair)
        else:
            pair[...] = ones @ a  # one strided copy for both (homes padded apart)
        return homes
    once = column_sums(be, a)
    return once, once.copy()


def _address(a: Any) -> int:
    ptr = getattr(a.data, "ptr", None)  # CuPy's memory pointer; NumPy's is in its interface
    return int(ptr if ptr is not None else a.__array_interface__["data"][0])


def _pair_view(xp: Any, first: Any, second: Any) -> Any:
    """A (2, n) view over 1-D `first` and `second` when `second` starts after `first` in the same
    buffer (an optimizer's flat gradient buffer), both contiguous and alike; else None."""
    if first is None or second is None or first.ndim != 1 or first.size == 0:
        return None
    if second.shape != first.shape or second.dtype != first.dtype:
        return None
    if not (first.flags.c_contiguous and second.flags.c_contiguous):
        return None
    if first.base is None or second.base is None:
        return None
    if _address(first.base) != _address(second.base):
        return None
    gap = _address(second) - _address(first)
    if gap < first.nbytes or gap % first.itemsize:
        return None
    shape, strides = (2, first.size), (gap, first.itemsize)
    return xp.lib.stride_tricks.as_strided(first, shape=shape, strides=strides)


def _contiguous(xp: Any, a: Any, out: Any) -> Any:
    """A contiguous copy of `a`, into `out` (a gradient home) when given."""
    if out is None:
        return xp.ascontiguousarray(a)
    out[...] = a
    return out


def _gru_blocks(a: Any, n_h: int) -> tuple[Any, Any, Any, Any]:
    """Views (rz, r, z, n) of the r, z, n blocks along the last axis of a GRU gate array."""
    rz = a[..., : 2 * n_h]
    return rz, rz[..., :n_h], rz[..., n_h:], a[..., 2 * n_h :]


class RecurrentLayer(Function):
    """Inputs: x (T, B, I), h0 (B, H), [c0 (B, H) for LSTM], w_ih, w_hh, [b_ih, b_hh].

    Output: (T, B, H), the hidden state after every step in time order (for reverse=True the
    sequence is read backwards, so out[0] is the last state). LSTM appends c_n: (T + 1, B, H).
    """

    def __init__(self, mode: str, reverse: bool, has_bias: bool, zero_state: bool = False) -> None:
        self.mode, self.reverse, self.has_bias = mode, reverse, has_bias
        # The caller made h0 (and c0) as zeros: the first step skips its recurrent terms.
        self.zero_state = zero_state

    # ---- forward -------------------------------------------------------------------------------

    def _named(self, values: Any) -> Inputs:
        """The op's inputs in call order (x, h0, [c0], w_ih, w_hh, [b_ih, b_hh]) by name."""
        if self.mode == "LSTM":
            x, h0, c0, w_ih, w_hh, *biases = values
        else:
            (x, h0, w_ih, w_hh, *biases), c0 = values, None
        return Inputs(x, h0, c0, w_ih, w_hh, *(biases or (None, None)))

    def _in_call_order(self, named: Inputs) -> tuple:
        """The inverse of _named."""
        x, h0, c0, w_ih, w_hh, b_ih, b_hh = named
        first = (x, h0, c0) if self.mode == "LSTM" else (x, h0)
        return first + ((w_ih, w_hh, b_ih, b_hh) if self.has_bias else (w_ih, w_hh))

    def forward(self, *arrays: Any) -> Any:
        inp = self._named(arrays)
        t_len = inp.x.shape[0]
        self.x, self.w_ih, self.w_hh, self.h0 = inp.x, inp.w_ih, inp.w_hh, inp.h0
        self.steps = range(t_len - 1, -1, -1) if self.reverse else range(t_len)
        self.t_len = t_len
        # Set by the LSTM's forward when it has them: x with a column of ones (a bias), and the
        # states each step started from as a slice of its buffer (forward in time).
        self.x_ones = self.prev_states = None
        # Set by every mode's forward: hs, h after each step (T, B, H); saved, what its
        # backward needs besides (LstmSaved, GruSaved; the RNN needs only hs).
        self.hs: Any = None
        self.saved: Any = None
        self.fused = self.mode == "LSTM" and fused_lstm.runs_per_step(self.be)
        lstm = self._lstm_forward_fused if self.fused else self._lstm_forward
        forward = {"LSTM": lstm, "GRU": self._gru_forward}.get(self.mode, self._rnn_forward)
        return forward(inp)

    def _project(self, x: Any, w: Any, bias: Any) -> Any:
        """x (T, B, I) @ w (I, N) + bias for all time steps in one matmul: (T, B, N).

        Keeps x as (T * B, I) rows for the weight gradient (a copy when x is a transposed view).
        """
        t_len, batch, n_in = x.shape
        self.x_rows = x.reshape(t_len * batch, n_in)
        xw = (self.x_rows @ w).reshape(t_len, batch, w.shape[1])  # no -1: batch may be 0
        if bias is not None:
            xw += bias
        return xw

    def _prev(self, out: Any, first: Any, t: int) -> Any:
        """The state that step t starts from: `first` at the sequence start, else a neighbour."""
        if self.reverse:
            return first if t == self.t_len - 1 else out[t + 1]
        return first if t == 0 else out[t - 1]

    def _rnn_forward(self, inp: Inputs) -> Any:
        xp, h0 = self.be.xp, inp.h0
        bias = None if inp.b_ih is None else inp.b_ih + inp.b_hh
        w_t = xp.ascontiguousarray(inp.w_hh.T)  # row-major: faster per-step products (see LSTM)
        out = self._project(inp.x, inp.w_ih.T, bias)  # (T, B, H), filled in place step by step
        for t in self.steps:
            h = out[t]
            h += self._prev(out, h0, t) @ w_t
            if self.mode == "RNN_TANH":
                xp.tanh(h, out=h)
            else:
                xp.maximum(h, 0, out=h)
        self.hs = out
        return out

    def _lstm_forward(self, inp: Inputs) -> Any:
        """The LSTM loop on gate-major activations: acts[t] is (4, B, H), one block per gate.

        NumPy pays per call and more for strided operands, so each step works on contiguous
        (B, H) blocks: the recurrent product is one batched matmul into (4, B, H) (as fast here as
        the plain (B, H) @ (H, 4H)), not a (B, 4H) array whose gate columns are strided views.
        The loop keeps the gates in the order i, f, o, g, sigmoid gates first, so that with
        sigmoid(v) = 0.5 tanh(v / 2) + 0.5 one tanh over all four blocks and one affine map over
        the first three give every activation; the 1/2 rides in the weights and biases.
        """
        xp = self.be.xp
        x, h0, c0, w_ih, w_hh, b_ih, b_hh = inp
        t_len, batch, n_in = x.shape
        n_h = w_hh.shape[1]
        dtype = x.dtype
        # device-resident (cached): an index list or a tuple would be copied over on every call
        order = self.be.constant(_LSTM_LOOP_ORDER, np.int64)
        scale = self.be.constant(_LSTM_LOOP_SCALE, dtype)
        w_loop = xp.multiply(  # (4, H, H): h @ w_loop[k] is gate k's scaled recurrent term
            w_hh.reshape(4, n_h, n_h)[order].transpose(0, 2, 1),
            scale[:, None, None],
            out=xp.empty((4, n_h, n_h), dtype=dtype),
        )
        # The input terms go straight into the step-major activations: one small matmul per step
        # and gate, x[t] (B, I) @ w_in[k] (I, H), all in one batched call (NumPy took 0.25 ms for
        # T = 50, B = 32, I = 32, H = 64, against 0.41 ms for one big matmul and a transposed
        # copy). A bias rides along as a column of ones in x and a row in w_in.
        n_col = n_in + 1 if b_ih is not None else n_in
        w_in = xp.empty((4, n_col, n_h), dtype=dtype)  # x[t] @ w_in[k]: gate k's scaled term
        xp.multiply(
            w_ih.reshape(4, n_h, n_in)[order].transpose(0, 2, 1),
            scale[:, None, None],
            out=w_in[:, :n_in],
        )
        if b_ih is not None:
            xp.multiply((b_ih + b_hh).reshape(4, n_h)[order], scale[:, None], out=w_in[:, n_in])
            x_in = xp.empty((t_len, batch, n_col), dtype=dtype)
            x_in[..., :n_in] = x
            x_in[..., n_in] = 1.0
            # the ones column makes the bias gradient one more column of the weight gradient
            self.x_ones = x_in.reshape(t_len * batch, n_col)
            self.x_rows = self.x_ones[:, :n_in]
        else:
            x_in = x
            self.x_rows = x.reshape(t_len * batch, n_in)
        if batch >= _BATCHED_PROJECTION_MIN:
            acts = xp.matmul(x_in[:, None], w_in)  # (T, 4, B, H), loop order, scaled
        else:  # tiny batches: per-call cost dominates, so one big matmul and a copy
            rows = x_in.reshape(t_len * batch, n_col) @ w_in.transpose(1, 0, 2).reshape(n_col, -1)
            acts = xp.empty((t_len, 4, batch, n_h), dtype=dtype)
            acts[...] = rows.reshape(t_len, batch, 4, n_h).transpose(0, 2, 1, 3)
        # Forward in time, h_0 goes in row 0 of the states' buffer, so that the states each step
        # started from are one slice of it for the weight gradient (reverse keeps a concatenation).
        lead = 0 if self.reverse else 1
        states = xp.empty((lead + t_len + 1, batch, n_h), dtype=dtype)
        if lead:
            states[0] = h0
            self.prev_states = states[:t_len]
        y = states[lead:]  # h per step, then c_n
        hs = y[:t_len]
        cells = xp.empty((lead + t_len, batch, n_h), dtype=dtype)  # c per step, after c_0
        cs = cells[lead:]
        prev_cells = None
        if lead:
            cells[0] = c0
            prev_cells = cells[:t_len]
        tcs = xp.empty((t_len, batch, n_h), dtype=dtype)  # tanh(c) per step
        rec = xp.empty((4, batch, n_h), dtype=dtype)
        ig = xp.empty((batch, n_h), dtype=dtype)
        h, c = h0, c0  # the states the next step starts from
        for t in self.steps:
            a = acts[t]
            xp.matmul(h, w_loop, out=rec)
            a += rec
            xp.tanh(a, out=a)
            sig = a[:3]  # i, f, o: sigmoid(v) = 0.5 tanh(v / 2) + 0.5
            sig *= 0.5
            sig += 0.5
            i, f, o, g = a
            c_prev, c, tc, h = c, cs[t], tcs[t], hs[t]
            xp.multiply(f, c_prev, out=c)
            xp.multiply(i, g, out=ig)
            c += ig
            xp.tanh(c, out=tc)
            xp.multiply(o, tc, out=h)
        y[t_len] = cs[self.steps[-1]]
        self.hs = hs
        self.saved = LstmSaved(acts, cs, tcs, prev_cells, c0)
        return y

    def _lstm_forward_fused(self, inp: Inputs) -> Any:
        """The LSTM loop as a GPU wants it: all steps' input terms in one matmul, then per step
        one matmul (h W_hh^T) and one fused cell kernel, which adds the input term and biases,
        applies the gates and writes c, h and the activated gates (over the input terms)."""
        xp = self.be.xp
        x, h0, c0, w_ih, w_hh, b_ih, b_hh = inp
        t_len, batch, _ = x.shape
        n_h = w_hh.shape[1]
        dtype = x.dtype
        gates = self._project(x, w_ih.T, None)  # (T, B, 4H), overwritten step by step
        bias = fused_lstm.Bias(b_ih, b_hh) if b_ih is not None else None
        # Forward in time from a given h_0, h_0 goes in row 0 of the states' buffer, so that the
        # states each step started from are one slice of it for the weight gradient (reverse keeps
        # a concatenation; from a zero state the first step adds nothing to it).
        lead = 0 if self.reverse or self.zero_state else 1
        states = xp.empty((lead + t_len + 1, batch, n_h), dtype=dtype)
        if lead:
            states[0] = h0
            self.prev_states = states[:t_len]
        y = states[lead:]  # h per step, then c_n
        hs = y[:t_len]
        c_buf = xp.empty((t_len, batch, n_h), dtype=dtype)
        last = self.steps[-1]
        cells = [y[t_len] if t == last else c_buf[t] for t in range(t_len)]  # c_n: written once
        c0 = None if self.zero_state else xp.ascontiguousarray(c0)
        rec_buf = xp.empty((batch, 4 * n_h), dtype=dtype)
        w_rec = w_hh.T  # (H, 4H), column-major: cuBLAS takes it as it is
        h, c = (None if self.zero_state else h0), c0
        for t in self.steps:
            rec = None if h is None else xp.matmul(h, w_rec, out=rec_buf)
            step = fused_lstm.StepIn(gates[t], rec, c, bias)
            fused_lstm.forward(self.be, step, fused_lstm.StepOut(gates[t], cells[t], hs[t]))
            h, c = hs[t], cells[t]
        self.hs = hs
        self.saved = LstmCells(gates, cells, c0)
        return y

    def _gru_forward(self, inp: Inputs) -> Any:
        xp, h0, b_hh = self.be.xp, inp.h0, inp.b_hh
        xw = self._project(inp.x, inp.w_ih.T, inp.b_ih)  # (T, B, 3H); b_hh stays inside r * (..)
        t_len, batch, three_h = xw.shape
        n_h = three_h // 3
        w_t = xp.ascontiguousarray(inp.w_hh.T)  # row-major: faster per-step products (see LSTM)
        out = xp.empty((t_len, batch, n_h), dtype=xw.dtype)
        hwn = xp.empty((t_len, batch, n_h), dtype=xw.dtype)  # W_hn h + b_hn per step
        # The gate blocks of all steps as views, made once: the pre-activations, overwritten in
        # place by the activations (the loop then slices only by time).
        rz_all, r_all, z_all, n_all = _gru_blocks(xw, n_h)
        rz_cols, n_cols = slice(0, 2 * n_h), slice(2 * n_h, 3 * n_h)  # of h W_hh^T
        for t in self.steps:
            h_prev = self._prev(out, h0, t)
            hw = h_prev @ w_t
            if b_hh is not None:
                hw += b_hh
            rz = rz_all[t]
            rz += hw[:, rz_cols]
            rz *= 0.5  # sigmoid via tanh, in place
            xp.tanh(rz, out=rz)
            rz *= 0.5
            rz += 0.5
            hwn[t] = hw[:, n_cols]
            n = n_all[t]
            n += r_all[t] * hwn[t]
            xp.tanh(n, out=n)
            # h = (1 - z) * n + z * h_prev = n + z * (h_prev - n)
            h = out[t]
            xp.subtract(h_prev, n, out=h)
            h *= z_all[t]
            h += n
        self.hs = out
        self.saved = GruSaved(xw, hwn)
        return out

    # ---- backward ------------------------------------------------------------------------------

    def backward(self, gy: Any) -> Any:
        lstm = self._lstm_backward_fused if self.fused else self._lstm_backward
        backward = {"LSTM": lstm, "GRU": self._gru_backward}.get(self.mode, self._rnn_backward)
        through = backward(gy)
        xp, x = self.be.xp, self.x
        t_len, batch, n_in = x.shape
        needs = self._named(self.needs_input_grad)
        # The weight gradients are one matmul each over all steps: (T * B, G*H) rows.
        d_ih = through.d_ih.reshape(t_len * batch, through.d_ih.shape[2])  # no -1: batch may be 0
        d_hh = through.d_hh.reshape(t_len * batch, through.d_hh.shape[2])
        gx = (d_ih @ self.w_ih).reshape(x.shape) if needs.x else None
        gw_ih = gb_ih = None
        # the weights' slots in a flat gradient buffer, if any (Function.grad_home)
        n = len(self.needs_input_grad)
        hints = [self.grad_home(i, d_ih.dtype) for i in range(n)] if self.grad_out else [None] * n
        homes = self._named(hints)
        if self.x_ones is not None and (needs.w_ih or needs.b_ih or needs.b_hh):
            both = d_ih.T @ self.x_ones  # (G*H, I + 1): [gw_ih | gb], one matmul
            gw_ih = _contiguous(xp, both[:, :n_in], homes.w_ih) if needs.w_ih else None
            gb_ih = _contiguous(xp, both[:, n_in], homes.b_ih)
        elif needs.w_ih:
            gw_ih = xp.matmul(d_ih.T, self.x_rows, out=homes.w_ih)
        gw_hh = None
        if needs.w_hh:
            gw_hh = self._recurrent_weight_grad(through.d_hh, homes.w_hh)
        gb_hh = None
        if self.has_bias:
            # LSTM and RNN have one gradient array for both biases: one matmul serves both
            same = through.d_hh is through.d_ih
            if gb_ih is None and same and needs.b_ih and needs.b_hh:
                gb_ih, gb_hh = _column_sums_twice(self.be, d_ih, (homes.b_ih, homes.b_hh))
            else:
                if gb_ih is None and needs.b_ih:
                    gb_ih = column_sums(self.be, d_ih)
                if needs.b_hh:
                    gb_hh = gb_ih if same and gb_ih is not None else column_sums(self.be, d_hh)
            gb_ih = gb_ih if needs.b_ih else None
            if gb_hh is gb_ih and gb_hh is not None and homes.b_hh is not None:
                gb_hh = _contiguous(xp, gb_ih, homes.b_hh)  # the copy autograd would make
        grads = Inputs(
            gx, through.gh0 if needs.h0 else None, through.gc0 if needs.c0 else None,
            gw_ih, gw_hh, gb_ih, gb_hh,
        )  # fmt: skip
        return self._in_call_order(grads)

    def _recurrent_weight_grad(self, d_hh: Any, out: Any = None) -> Any:
        """The gradient of W_hh: the (T, B, G*H) gate gradients^T @ the states their steps
        started from, one matmul. From a zero state the first step adds nothing: it is left out
        (so h_0 needs no place in the states' buffer)."""
        if self.zero_state:  # forward in time, step t started from hs[t - 1]; reversed, hs[t + 1]
            later, earlier = slice(1, None), slice(0, -1)
            if self.reverse:
                d_hh, prev = d_hh[earlier], self.hs[later]
            else:
                d_hh, prev = d_hh[later], self.hs[earlier]
        else:
            prev = self._started_from(self.hs, self.h0, self.prev_states)
        rows = d_hh.shape[0] * d_hh.shape[1]
        a, b = d_hh.reshape(rows, d_hh.shape[2]).T, prev.reshape(rows, prev.shape[2])
        return a @ b if out is None else self.be.xp.matmul(a, b, out=out)  # out: W_hh's home

    def _started_from(self, after: Any, first: Any, kept: Any) -> Any:
        """(T, B, H): the state each step started from, given the states after each step and the
        initial one (`kept`: that array already, when the forward left it as a slice)."""
        if kept is not None:
            return kept
        xp = self.be.xp
        if self.reverse:
            return xp.concatenate((after[1:], first[None]))
        return xp.concatenate((first[None], after[:-1]))

    def _rnn_backward(self, gy: Any) -> Through:
        xp, out, w_hh = self.be.xp, self.hs, self.w_hh
        if self.mode == "RNN_TANH":
            deriv = 1.0 - out * out
        else:
            deriv = (out > 0).astype(out.dtype)
        dg = xp.empty_like(out)
        gh = xp.zeros_like(out[0])
        for t in reversed(self.steps):
            d = dg[t]
            xp.add(gy[t], gh, out=d)
            d *= deriv[t]
            gh = d @ w_hh
        return Through(dg, dg, gh)

    def _lstm_backward(self, gy: Any) -> Through:
        """Back through time with per-step coefficients computed for all steps up front.

        With gct the gradient reaching c_t, the pre-activation gradients are gct * K for i, f, g
        and gh * K for o, so each step is a handful of contiguous (B, H) products. K is gate-major
        (4, T, B, H): NumPy runs a whole-array op on one contiguous block about three times as
        fast as on a (T, B, H) slice of a (T, 4, B, H) array.
        """
        xp, w_hh, saved = self.be.xp, self.w_hh, self.saved
        acts, tcs = saved.acts, saved.tcs
        t_len, _, batch, n_h = acts.shape
        dtype = acts.dtype
        # One strided pass makes the activations gate-major; every op below then runs on
        # contiguous (T, B, H) blocks, which NumPy streams two to three times as fast as slices.
        gates = xp.ascontiguousarray(acts.transpose(1, 0, 2, 3))  # loop order i, f, o, g
        i_all, f_all, o_all, g_all = gates
        c_prev = self._started_from(saved.cs, saved.c0, saved.prev_cells)
        coef = xp.empty((4, t_len, batch, n_h), dtype=dtype)  # PyTorch order i, f, g, o
        k_i, k_f, k_g, k_o = coef
        xp.subtract(1.0, i_all, out=k_i)  # g s_i (1 - s_i)
        k_i *= i_all
        k_i *= g_all
        xp.subtract(1.0, f_all, out=k_f)  # c_prev s_f (1 - s_f)
        k_f *= f_all
        k_f *= c_prev
        xp.multiply(g_all, g_all, out=k_g)  # i (1 - g^2)
        xp.subtract(1.0, k_g, out=k_g)
        k_g *= i_all
        xp.subtract(1.0, o_all, out=k_o)  # tanh(c) s_o (1 - s_o)
        k_o *= o_all
        k_o *= tcs
        o_dtc = tcs * tcs  # o (1 - tanh(c)^2): from h back to c
        xp.subtract(1.0, o_dtc, out=o_dtc)
        o_dtc *= o_all
        dg = xp.empty((t_len, batch, 4 * n_h), dtype=dtype)  # PyTorch's (T, B, 4H) layout
        dg_gate_major = dg.reshape(t_len, batch, 4, n_h).transpose(0, 2, 1, 3)
        u = xp.empty((4, batch, n_h), dtype=dtype)
        gh = xp.zeros((batch, n_h), dtype=dtype)
        gc = gy[t_len].copy()  # the gradient of c_n
        for t in reversed(self.steps):
            gh += gy[t]
            gct = gh * o_dtc[t]
            gct += gc
            k = coef[:, t]
            xp.multiply(gct, k[_THROUGH_C], out=u[_THROUGH_C])
            xp.multiply(gh, k[_O], out=u[_O])
            gc = gct * f_all[t]
            dg_gate_major[t] = u
            gh = dg[t] @ w_hh
        return Through(dg, dg, gh, gc)

    def _lstm_backward_fused(self, gy: Any) -> Through:
        """Back through time with one fused cell-backward kernel and one matmul (the gate
        gradients @ W_hh, the gradient reaching h_{t-1}) per step; the step that started from h_0
        skips its matmul unless h_0 wants a gradient."""
        xp, saved = self.be.xp, self.saved
        gates, cells, c0 = saved
        t_len, batch, four_h = gates.shape
        n_h = four_h // 4
        gy = xp.ascontiguousarray(gy)
        dg = xp.empty_like(gates)  # (T, B, 4H): PyTorch's layout for the weight gradients
        gc = xp.empty((batch, n_h), dtype=gates.dtype)  # gradient of c, carried back in place
        gh_rec = xp.empty((batch, n_h), dtype=gates.dtype)
        need_gh0 = self._named(self.needs_input_grad).h0
        back = list(reversed(self.steps))
        gc_in, rec = gy[t_len], None  # gradient of c_n; nothing through W_hh yet
        for t in back:
            grad = fused_lstm.GradIn(
                gates[t], cells[t], self._prev(cells, c0, t), gy[t], rec, gc_in
            )  # fmt: skip
            fused_lstm.backward(self.be, grad, fused_lstm.GradOut(dg[t], gc))
            gc_in = gc
            if t != back[-1] or need_gh0:
                rec = xp.matmul(dg[t], self.w_hh, out=gh_rec)
        return Through(dg, dg, rec if need_gh0 else None, gc)

    def _gru_backward(self, gy: Any) -> Through:
        xp, out, w_hh, saved = self.be.xp, self.hs, self.w_hh, self.saved
        n_h = out.shape[2]
        rz_all, r_all, z_all, n_all = _gru_blocks(saved.acts, n_h)
        d_rz = rz_all * (1.0 - rz_all)
        d_n = 1.0 - n_all * n_all
        d_ih = xp.empty_like(saved.acts)  # gradients of W_i* x + b_i*
        d_hh = xp.empty_like(saved.acts)  # gradients of W_h* h + b_h*
        du_rz, du_r, du_z, du_n = _gru_blocks(d_ih, n_h)
        dv_rz, _, _, dv_n = _gru_blocks(d_hh, n_h)
        gh = xp.zeros_like(out[0])
        for t in reversed(self.steps):
            z, n = z_all[t], n_all[t]
            h_prev = self._prev(out, self.h0, t)
            gh = gh + gy[t]
            dn = du_n[t]
            xp.subtract(1.0, z, out=dn)
            dn *= gh
            dn *= d_n[t]  # gradient of the n pre-activation
            xp.multiply(dn, saved.hwn[t], out=du_r[t])  # through r
            dz = du_z[t]
            xp.subtract(h_prev, n, out=dz)
            dz *= gh  # through z
            drz = du_rz[t]
            drz *= d_rz[t]
            dv_rz[t] = drz
            xp.multiply(dn, r_all[t], out=dv_n[t])
            gh = gh * z + d_hh[t] @ w_hh
        return Through(d_ih, d_hh, gh)


def recurrent_layer(
    mode: str,
    x: Tensor,
    h0: Tensor,
    c0: Tensor | None,
    weights: list[Tensor],
    reverse: bool = False,
    zero_state: bool = False,
) -> Tensor:
    """One layer and direction over x (T, B, I) from h0 (B, H); weights [w_ih, w_hh, (b_ih, b_hh)].

    Returns the states (T, B, H) in time order; for LSTM, c_n is appended as row T.
    zero_state=True promises that h0 (and c0) are zeros (the caller made them so): the first step
    then skips its recurrent terms.
    """
    if mode not in GATES:
        raise ValueError(f"recurrent_layer: mode must be one of {sorted(GATES)}, got {mode!r}")
    states = (h0, c0) if mode == "LSTM" else (h0,)
    return RecurrentLayer.apply(
        x, *states, *weights, mode=mode, reverse=reverse, has_bias=len(weights) == 4,
        zero_state=zero_state,
    )  # fmt: skip
