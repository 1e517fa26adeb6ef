"""Recurrent layers as one Function per layer and direction: Elman RNN (tanh/relu), LSTM, GRU.

The input projection of all time steps is one matmul; the loop runs over time only, with one
(B, H) @ (H, gates*H) matmul and a few elementwise ops per step. Backward goes through time by
hand and collects the weight gradients in one matmul each at the end. Gate order and formulas
are PyTorch's: LSTM (i, f, g, o), GRU (r, z, n) with n = tanh(W_in x + b_in + r * (W_hn h + b_hn)).
"""

from __future__ import annotations

from typing import Any

from gnn.autograd import Function
from gnn.tensor import Tensor

GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


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
        t_len, batch, n_in = x.shape
        w_in, bias = w_ih.T, b_ih  # (I, G*H), (G*H,)
        if b_ih is not None and self.mode != "GRU":  # GRU keeps b_hh inside r * (W_hn h + b_hn)
            bias = b_ih + b_hh
        scale = self._lstm_scale(w_ih) if lstm else None
        if scale is not None:  # folded into the (small) weights, not applied to (T, B, 4H)
            w_in = w_in * scale
            bias = bias * scale if bias is not None else None
        xw = (x.reshape(t_len * batch, n_in) @ w_in).reshape(t_len, batch, -1)  # (T, B, G*H)
        if bias is not None:
            xw += bias
        self.x, self.w_ih, self.w_hh, self.h0 = x, w_ih, w_hh, h0
        steps = range(t_len - 1, -1, -1) if self.reverse else range(t_len)
        self.steps, self.t_len = steps, t_len
        if lstm:
            return self._lstm_forward(xw, h0, c0, w_hh, steps, scale)
        if self.mode == "GRU":
            return self._gru_forward(xw, h0, w_hh, b_hh, steps)
        return self._rnn_forward(xw, h0, w_hh, steps)

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

    def _lstm_scale(self, w_ih: Any) -> Any:
        """0.5 for the i, f, o columns, 1 for g: sigmoid(v) = 0.5 * tanh(0.5 v) + 0.5, so each
        step is one tanh over all four gates (of pre-activations scaled by this) and an affine map.
        """
        n_h = w_ih.shape[0] // 4
        scale = self.be.xp.full((4 * n_h,), 0.5, dtype=w_ih.dtype)
        scale[2 * n_h : 3 * n_h] = 1.0
        return scale

    def _lstm_forward(self, xw: Any, h0: Any, c0: Any, w_hh: Any, steps: range, scale: Any) -> Any:
        """xw: the input projections with biases, already multiplied by `scale`."""
        xp = self.be.xp
        t_len, batch, four_h = xw.shape
        n_h = four_h // 4
        shift = 1.0 - scale
        acts = xw
        # (H, 4H) in row-major order: OpenBLAS multiplies a short (B, H) block by it up to 3x
        # faster than by the transposed view of w_hh (and the scale rides along in the copy).
        w_t = xp.multiply(w_hh.T, scale, out=xp.empty(w_hh.shape[::-1], dtype=w_hh.dtype))
        y = xp.empty((t_len + 1, batch, n_h), dtype=xw.dtype)  # h per step, then c_n
        cs = xp.empty((t_len, batch, n_h), dtype=xw.dtype)  # c per step
        tcs = xp.empty((t_len, batch, n_h), dtype=xw.dtype)  # tanh(c) per step
        hs = y[:t_len]
        h, c = h0, c0  # the states the next step starts from
        for t in steps:
            a = acts[t]
            a += h @ w_t
            xp.tanh(a, out=a)
            a *= scale
            a += shift
            i, f, g, o = a[:, :n_h], a[:, n_h : 2 * n_h], a[:, 2 * n_h : 3 * n_h], a[:, 3 * n_h :]
            c_prev, c, tc, h = c, cs[t], tcs[t], hs[t]
            xp.multiply(f, c_prev, out=c)
            c += i * g
            xp.tanh(c, out=tc)
            xp.multiply(o, tc, out=h)
        y[t_len] = cs[steps[-1]]
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
        batch, n_in = x.shape[1], x.shape[2]
        needs = self.needs_input_grad
        k = 3 if self.mode == "LSTM" else 2  # index of w_ih among the inputs
        dgi2 = dgi.reshape(t_len * batch, -1)
        dgh2 = dgh.reshape(t_len * batch, -1)
        gx = (dgi2 @ self.w_ih).reshape(x.shape) if needs[0] else None
        gw_ih = dgi2.T @ x.reshape(t_len * batch, n_in) if needs[k] else None
        gw_hh = None
        if needs[k + 1]:
            hs = self.hs if self.mode == "LSTM" else self.out
            first = self.h0[None]
            prev = (
                xp.concatenate((hs[1:], first))
                if self.reverse
                else xp.concatenate((first, hs[:-1]))
            )  # (T, B, H): the state each step started from
            gw_hh = dgh2.T @ prev.reshape(t_len * batch, -1)
        grads = [gx, gh0 if needs[1] else None]
        if self.mode == "LSTM":
            grads.append(gc0 if needs[2] else None)
        grads += [gw_ih, gw_hh]
        if self.has_bias:
            gb_ih = dgi2.sum(axis=0) if needs[k + 2] else None
            gb_hh = None
            if needs[k + 3]:  # LSTM/RNN pass one array as dgi and dgh: one sum serves both
                gb_hh = gb_ih if dgi is dgh and gb_ih is not None else dgh2.sum(axis=0)
            grads += [gb_ih, gb_hh]
        return tuple(grads)

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
        xp = self.be.xp
        acts, cs, tcs, w_hh = self.acts, self.cs, self.tcs, self.w_hh
        n_h = cs.shape[2]
        # d(activation)/d(pre-activation) for all steps at once: s(1 - s), and 1 - g^2 for g
        deriv = acts * (1.0 - acts)
        g_all = acts[:, :, 2 * n_h : 3 * n_h]
        xp.subtract(1.0, g_all * g_all, out=deriv[:, :, 2 * n_h : 3 * n_h])
        dtc = 1.0 - tcs * tcs
        dg = xp.empty_like(acts)  # (T, B, 4H), gradients of the pre-activations
        t_len = cs.shape[0]
        gh = xp.zeros_like(cs[0])
        gc = gy[t_len].copy()  # the gradient of c_n
        for t in reversed(self.steps):
            a = acts[t]
            i, f, g, o = a[:, :n_h], a[:, n_h : 2 * n_h], a[:, 2 * n_h : 3 * n_h], a[:, 3 * n_h :]
            gh = gh + gy[t]
            gct = gh * o
            gct *= dtc[t]
            gct += gc
            u = dg[t]
            xp.multiply(gct, g, out=u[:, :n_h])
            xp.multiply(gct, self._prev(cs, self.c0, t), out=u[:, n_h : 2 * n_h])
            xp.multiply(gct, i, out=u[:, 2 * n_h : 3 * n_h])
            xp.multiply(gh, tcs[t], out=u[:, 3 * n_h :])
            u *= deriv[t]
            gc = gct * f
            gh = u @ w_hh
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
