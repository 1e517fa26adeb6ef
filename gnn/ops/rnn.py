"""Recurrent layers as one Function per layer and direction: Elman RNN (tanh/relu), LSTM, GRU.

The input projection of all time steps is done up front; the loop runs over time only, with one
recurrent matmul and a few elementwise ops per step. Backward goes through time by hand and
collects the weight gradients in one matmul each at the end. The LSTM keeps its gates as
separate (B, H) blocks (see _lstm_forward); RNN and GRU work on (B, gates * H) rows. Gate order
and formulas are PyTorch's: LSTM (i, f, g, o), GRU (r, z, n) with
n = tanh(W_in x + b_in + r * (W_hn h + b_hn)).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gnn.autograd import Function
from gnn.ops._util import column_sums
from gnn.tensor import Tensor

GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}
# The LSTM loop's gate order (indices into PyTorch's i, f, g, o) and each gate's input scale.
_LSTM_LOOP_ORDER = (0, 1, 3, 2)
_LSTM_LOOP_SCALE = (0.5, 0.5, 0.5, 1.0)
# From this batch size up, the LSTM's input projection runs as T * 4 small matmuls (one batched
# call) straight into its step-major layout; below it, one big matmul and a transposed copy win
# (NumPy, 2 vCPU: 0.35 against 0.15 ms at T = 200, B = 1; 0.28 against 0.60 ms at B = 16).
_BATCHED_PROJECTION_MIN = 8


class RecurrentLayer(Function):
    """Inputs: x (T, B, I), h0 (B, H), [c0 (B, H) for LSTM], w_ih, w_hh, [b_ih, b_hh].

    Output: (T, B, H), the hidden state after every step in time order (for reverse=True the
    sequence is read backwards, so out[0] is the last state). LSTM appends c_n: (T + 1, B, H).
    """

    def __init__(self, mode: str, reverse: bool, has_bias: bool) -> None:
        self.mode, self.reverse, self.has_bias = mode, reverse, has_bias

    # ---- forward -------------------------------------------------------------------------------

    def forward(self, x: Any, h0: Any, *rest: Any) -> Any:
        lstm = self.mode == "LSTM"
        c0 = rest[0] if lstm else None
        params = rest[1:] if lstm else rest
        w_ih, w_hh = params[0], params[1]
        b_ih, b_hh = (params[2], params[3]) if self.has_bias else (None, None)
        t_len = x.shape[0]
        self.x, self.w_ih, self.w_hh, self.h0 = x, w_ih, w_hh, h0
        steps = range(t_len - 1, -1, -1) if self.reverse else range(t_len)
        self.steps, self.t_len = steps, t_len
        # Set by the LSTM's forward when it has them: x with a column of ones (a bias), and the
        # states each step started from as slices of its buffers (forward in time).
        self.x_ones = self.prev_states = self.prev_cells = None
        if lstm:
            return self._lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh)
        bias = b_ih
        if b_ih is not None and self.mode != "GRU":  # GRU keeps b_hh inside r * (W_hn h + b_hn)
            bias = b_ih + b_hh
        xw = self._project(x, w_ih.T)  # (T, B, G*H)
        if bias is not None:
            xw += bias
        if self.mode == "GRU":
            return self._gru_forward(xw, h0, w_hh, b_hh, steps)
        return self._rnn_forward(xw, h0, w_hh, steps)

    def _project(self, x: Any, w: Any) -> Any:
        """x (T, B, I) @ w (I, N) for all time steps in one matmul: (T, B, N).

        Keeps x as (T * B, I) rows for the weight gradient (a copy when x is a transposed view).
        """
        t_len, batch, n_in = x.shape
        self.x_rows = x.reshape(t_len * batch, n_in)
        return (self.x_rows @ w).reshape(t_len, batch, w.shape[1])  # no -1: batch may be 0

    def _prev(self, out: Any, first: Any, t: int) -> Any:
        """The state that step t starts from: `first` at the sequence start, else a neighbour."""
        if self.reverse:
            return first if t == self.t_len - 1 else out[t + 1]
        return first if t == 0 else out[t - 1]

    def _rnn_forward(self, xw: Any, h0: Any, w_hh: Any, steps: range) -> Any:
        xp = self.be.xp
        w_t = xp.ascontiguousarray(w_hh.T)  # row-major: faster per-step products (see LSTM)
        out = xw  # (T, B, H), filled in place step by step
        for t in steps:
            h = out[t]
            h += self._prev(out, h0, t) @ w_t
            if self.mode == "RNN_TANH":
                xp.tanh(h, out=h)
            else:
                xp.maximum(h, 0, out=h)
        self.out = out
        return out

    def _lstm_forward(
        self, x: Any, h0: Any, c0: Any, w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any
    ) -> Any:
        """The LSTM loop on gate-major activations: acts[t] is (4, B, H), one block per gate.

        NumPy pays per call and more for strided operands, so each step works on contiguous
        (B, H) blocks: the recurrent product is one batched matmul into (4, B, H) (as fast here as
        the plain (B, H) @ (H, 4H)), not a (B, 4H) array whose gate columns are strided views.
        The loop keeps the gates in the order i, f, o, g, sigmoid gates first, so that with
        sigmoid(v) = 0.5 tanh(v / 2) + 0.5 one tanh over all four blocks and one affine map over
        the first three give every activation; the 1/2 rides in the weights and biases.
        """
        xp = self.be.xp
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
        if lead:
            cells[0] = c0
            self.prev_cells = cells[:t_len]
        tcs = xp.empty((t_len, batch, n_h), dtype=dtype)  # tanh(c) per step
        rec = xp.empty((4, batch, n_h), dtype=dtype)
        ig = xp.empty((batch, n_h), dtype=dtype)
        h, c = h0, c0  # the states the next step starts from
        for t in self.steps:
            a = acts[t]
            xp.matmul(h, w_loop, out=rec)
            a += rec
            xp.tanh(a, out=a)
            sig = a[:3]
            sig *= 0.5
            sig += 0.5
            c_prev, c, tc, h = c, cs[t], tcs[t], hs[t]
            xp.multiply(a[1], c_prev, out=c)
            xp.multiply(a[0], a[3], out=ig)
            c += ig
            xp.tanh(c, out=tc)
            xp.multiply(a[2], tc, out=h)
        y[t_len] = cs[self.steps[-1]]
        self.acts, self.cs, self.tcs, self.c0, self.hs = acts, cs, tcs, c0, hs
        return y

    def _gru_forward(self, xw: Any, h0: Any, w_hh: Any, b_hh: Any, steps: range) -> Any:
        xp = self.be.xp
        t_len, batch, three_h = xw.shape
        n_h = three_h // 3
        w_t = xp.ascontiguousarray(w_hh.T)  # row-major: faster per-step products (see LSTM)
        out = xp.empty((t_len, batch, n_h), dtype=xw.dtype)
        hwn = xp.empty((t_len, batch, n_h), dtype=xw.dtype)  # W_hn h + b_hn per step
        for t in steps:
            h_prev = self._prev(out, h0, t)
            hw = h_prev @ w_t
            if b_hh is not None:
                hw += b_hh
            a = xw[t]
            rz = a[:, : 2 * n_h]
            rz += hw[:, : 2 * n_h]
            rz *= 0.5  # sigmoid via tanh, in place
            xp.tanh(rz, out=rz)
            rz *= 0.5
            rz += 0.5
            hwn[t] = hw[:, 2 * n_h :]
            n = a[:, 2 * n_h :]
            n += rz[:, :n_h] * hwn[t]
            xp.tanh(n, out=n)
            # h = (1 - z) * n + z * h_prev = n + z * (h_prev - n)
            h = out[t]
            xp.subtract(h_prev, n, out=h)
            h *= rz[:, n_h:]
            h += n
        self.acts, self.hwn, self.out = xw, hwn, out
        return out

    # ---- backward ------------------------------------------------------------------------------

    def backward(self, gy: Any) -> Any:
        if self.mode == "LSTM":
            dgi, dgh, gh0, gc0 = self._lstm_backward(gy)
        elif self.mode == "GRU":
            dgi, dgh, gh0 = self._gru_backward(gy)
            gc0 = None
        else:
            dgi, dgh, gh0 = self._rnn_backward(gy)
            gc0 = None
        xp = self.be.xp
        x, t_len = self.x, self.x.shape[0]
        batch = x.shape[1]
        needs = self.needs_input_grad
        k = 3 if self.mode == "LSTM" else 2  # index of w_ih among the inputs
        dgi2 = dgi.reshape(t_len * batch, dgi.shape[2])  # no -1: batch may be 0
        dgh2 = dgh.reshape(t_len * batch, dgh.shape[2])
        gx = (dgi2 @ self.w_ih).reshape(x.shape) if needs[0] else None
        gw_ih = gb_sum = None
        if self.x_ones is not None and (needs[k] or needs[k + 2] or needs[k + 3]):
            both = dgi2.T @ self.x_ones  # (G*H, I + 1): [gw_ih | gb], one matmul
            n_in = x.shape[2]
            gw_ih = xp.ascontiguousarray(both[:, :n_in]) if needs[k] else None
            gb_sum = xp.ascontiguousarray(both[:, n_in])
        elif needs[k]:
            gw_ih = dgi2.T @ self.x_rows
        gw_hh = None
        if needs[k + 1]:
            hs = self.hs if self.mode == "LSTM" else self.out
            prev = self._started_from(hs, self.h0, self.prev_states)
            gw_hh = dgh2.T @ prev.reshape(t_len * batch, prev.shape[2])
        grads = [gx, gh0 if needs[1] else None]
        if self.mode == "LSTM":
            grads.append(gc0 if needs[2] else None)
        grads += [gw_ih, gw_hh]
        if self.has_bias:
            if gb_sum is None and needs[k + 2]:
                gb_sum = column_sums(xp, dgi2)
            gb_ih = gb_sum if needs[k + 2] else None
            gb_hh = None
            if needs[k + 3]:  # LSTM/RNN pass one array as dgi and dgh: one sum serves both
                gb_hh = gb_sum if dgi is dgh and gb_sum is not None else column_sums(xp, dgh2)
            grads += [gb_ih, gb_hh]
        return tuple(grads)

    def _started_from(self, after: Any, first: Any, kept: Any) -> Any:
        """(T, B, H): the state each step started from, given the states after each step and the
        initial one (`kept`: that array already, when the forward left it as a slice)."""
        if kept is not None:
            return kept
        xp = self.be.xp
        if self.reverse:
            return xp.concatenate((after[1:], first[None]))
        return xp.concatenate((first[None], after[:-1]))

    def _rnn_backward(self, gy: Any) -> tuple:
        xp, out, w_hh = self.be.xp, self.out, self.w_hh
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
        return dg, dg, gh

    def _lstm_backward(self, gy: Any) -> tuple:
        """Back through time with per-step coefficients computed for all steps up front.

        With gct the gradient reaching c_t, the pre-activation gradients are gct * K for i, f, g
        and gh * K for o, so each step is a handful of contiguous (B, H) products. K is gate-major
        (4, T, B, H): NumPy runs a whole-array op on one contiguous block about three times as
        fast as on a (T, B, H) slice of a (T, 4, B, H) array.
        """
        xp = self.be.xp
        acts, cs, tcs, w_hh = self.acts, self.cs, self.tcs, self.w_hh
        t_len, _, batch, n_h = acts.shape
        dtype = acts.dtype
        # One strided pass makes the activations gate-major; every op below then runs on
        # contiguous (T, B, H) blocks, which NumPy streams two to three times as fast as slices.
        gates = xp.ascontiguousarray(acts.transpose(1, 0, 2, 3))  # loop order i, f, o, g
        i_all, f_all, o_all, g_all = gates[0], gates[1], gates[2], gates[3]
        c_prev = self._started_from(cs, self.c0, self.prev_cells)
        coef = xp.empty((4, t_len, batch, n_h), dtype=dtype)  # PyTorch order i, f, g, o
        k_i, k_f, k_g, k_o = coef[0], coef[1], coef[2], coef[3]
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
            xp.multiply(gct, k[:3], out=u[:3])
            xp.multiply(gh, k[3], out=u[3])
            gc = gct * f_all[t]
            dg_gate_major[t] = u
            gh = dg[t] @ w_hh
        return dg, dg, gh, gc

    def _gru_backward(self, gy: Any) -> tuple:
        xp = self.be.xp
        acts, hwn, out, w_hh = self.acts, self.hwn, self.out, self.w_hh
        n_h = out.shape[2]
        rz = acts[:, :, : 2 * n_h]
        n_all = acts[:, :, 2 * n_h :]
        d_rz = rz * (1.0 - rz)
        d_n = 1.0 - n_all * n_all
        dgi = xp.empty_like(acts)  # gradients of W_i* x + b_i*
        dgh = xp.empty_like(acts)  # gradients of W_h* h + b_h*
        gh = xp.zeros_like(out[0])
        for t in reversed(self.steps):
            r, z, n = rz[t, :, :n_h], rz[t, :, n_h:], n_all[t]
            h_prev = self._prev(out, self.h0, t)
            gh = gh + gy[t]
            u, v = dgi[t], dgh[t]
            dn = u[:, 2 * n_h :]
            xp.subtract(1.0, z, out=dn)
            dn *= gh
            dn *= d_n[t]  # gradient of the n pre-activation
            xp.multiply(dn, hwn[t], out=u[:, :n_h])  # through r
            xp.subtract(h_prev, n, out=u[:, n_h : 2 * n_h])
            u[:, n_h : 2 * n_h] *= gh  # through z
            u[:, : 2 * n_h] *= d_rz[t]
            v[:, : 2 * n_h] = u[:, : 2 * n_h]
            xp.multiply(dn, r, out=v[:, 2 * n_h :])
            gh = gh * z + v @ w_hh
        return dgi, dgh, gh


def recurrent_layer(
    mode: str,
    x: Tensor,
    h0: Tensor,
    c0: Tensor | None,
    weights: list[Tensor],
    reverse: bool = False,
) -> Tensor:
    """One layer and direction over x (T, B, I) from h0 (B, H); weights [w_ih, w_hh, (b_ih, b_hh)].

    Returns the states (T, B, H) in time order; for LSTM, c_n is appended as row T.
    """
    if mode not in GATES:
        raise ValueError(f"recurrent_layer: mode must be one of {sorted(GATES)}, got {mode!r}")
    states = (h0, c0) if mode == "LSTM" else (h0,)
    return RecurrentLayer.apply(
        x, *states, *weights, mode=mode, reverse=reverse, has_bias=len(weights) == 4
    )
