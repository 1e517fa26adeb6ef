"""Recurrent layers as one Function per layer and direction: Elman RNN (tanh/relu), LSTM, GRU.

Every mode runs the same algorithm (RecurrentLayer). The input terms of all time steps (x W_ih^T
plus biases) are made up front in one matmul; the loop over time then makes one recurrent matmul
(h_{t-1} W_hh^T) per step and hands it to the mode's Cell, which applies the gates in place and
writes h (and c). Backward runs the steps in reverse: the Cell turns the gradient reaching h_t into
the gradients of that step's (B, G*H) gate rows (G gates of H units), one matmul with W_hh carries
it on to h_{t-1}, and the weight gradients are one matmul each over all steps' rows at the end.
Gate order and formulas are PyTorch's: LSTM (i, f, g, o), GRU (r, z, n) with
n = tanh(W_in x + b_in + r * (W_hn h + b_hn)).

gnn.nn.rnn_cells writes the same cells in primitives: the readable spec, and the oracle this op is
tested against (tests/test_rnn_cells.py). The hand-written cells stay because they are faster: a
layer's forward and backward (T = 50, B = 32, I = 32, H = 64, float32) took 2.9 to 3.8 times as
long through the primitive cells (medians of two runs each for RNN, LSTM and GRU; CPU time on the
shared 2-vCPU VM this was written on, 2026-12-04).

On a GPU the LSTM's step is one fused kernel each way (FusedLstm: gnn.backend.fused.lstm,
kernels/lstm_cell.cu), so a step costs one cuBLAS matmul and one kernel launch each way.
"""

from __future__ import annotations

from collections import namedtuple
from functools import partial
from typing import Any

from gnn.autograd import Function
from gnn.backend.fused import lstm as fused_lstm
from gnn.ops._util import column_sums
from gnn.tensor import Tensor

GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


# The op's inputs (or their gradients, or needs_input_grad) by name; absent ones are None.
# (mypy reads namedtuple defaults only when written out as a literal tuple, hence its ignore)
Inputs = namedtuple("Inputs", "x h0 c0 w_ih w_hh b_ih b_hh", defaults=(None,) * 7)  # type: ignore[misc]


class Cell:
    """One mode's time step on a (B, G*H) row of gates, forward and backward.

    Made by RecurrentLayer.forward. `xw` holds the input terms of all steps, x W_ih^T plus biases
    (made by `project`; the NumPy LSTM's gate-major), which the steps overwrite with the gates'
    activations. `w_rec` is what h_{t-1} is multiplied by for the recurrent terms; `hs` (T, B, H)
    holds h after each step and `out` is the op's output. Once backward's steps ran, `d_ih` and
    `d_hh` (T, B, G*H) hold the gradients of the input terms and of the recurrent terms
    h W_hh^T (+ b_hh).
    """

    hs: Any
    out: Any
    gc: Any = None  # the LSTM's: the gradient reaching c_0 once backward's steps ran

    def __init__(self, layer: RecurrentLayer, inp: Inputs) -> None:
        self.be, self.xp, self.x, self.x_rows = layer.be, layer.be.xp, inp.x, layer.x_rows
        self.steps, self.reverse, self.n_h = layer.steps, layer.reverse, inp.w_hh.shape[1]
        self.row_shape = (*inp.x.shape[:2], inp.w_ih.shape[0])  # (T, B, G*H)

    def project(self, inp: Inputs, b_hh: Any) -> None:
        """xw, the input terms of all steps, x W_ih^T + b_ih (+ b_hh), in one matmul (T, B, G*H);
        w_rec, W_hh^T row-major (NumPy's per-step products are faster on it than on the view)."""
        self.xw = (self.x_rows @ inp.w_ih.T).reshape(self.row_shape)
        if inp.b_ih is not None:
            self.xw += inp.b_ih if b_hh is None else inp.b_ih + b_hh
        self.w_rec = self.xp.ascontiguousarray(inp.w_hh.T)

    def all_before(self, after: Any, first: Any) -> Any:
        """(T, B, H): the state each step started from, given those after each step (`after`,
        in time order) and the one the sequence started from."""
        parts = (after[1:], first[None]) if self.reverse else (first[None], after[:-1])
        return self.xp.concatenate(parts)

    def forward(self, t: int, rec: Any, h_prev: Any) -> Any:
        """Step t from h_prev = h_{t-1} and rec = h_{t-1} W_hh^T (None when h_{t-1} is zero);
        returns h_t (hs[t])."""
        raise NotImplementedError

    def start_backward(self, gy: Any) -> None:
        """What backward's steps share, computed for all steps at once; gy is the output's."""
        self.d_ih = self.d_hh = self.xp.empty(self.row_shape, dtype=self.hs.dtype)

    def backward(self, t: int, gy_t: Any, gh_rec: Any) -> Any:
        """Step t's gate gradients (into d_ih[t] and d_hh[t]), from gy_t, the output's gradient of
        h_t, and gh_rec, the gradient reaching h_t through step t + 1's recurrent matmul (None at
        the sequence end). Returns the gradient reaching h_{t-1} other than through W_hh, if any.
        """
        raise NotImplementedError


def _address(a: Any) -> int:
    """Where a's first element lies in memory (CuPy's memory pointer, else NumPy's)."""
    return getattr(a.data, "ptr", None) or a.ctypes.data


def _pair(xp: Any, first: Any, second: Any) -> Any:
    """A (2, n) view over 1-D `first` and `second` when the second starts where the first ends
    (b_ih's and b_hh's homes back to back in an optimizer's flat gradient buffer); else None."""
    if first is None or second is None or _address(second) != _address(first) + first.nbytes:
        return None
    return xp.lib.stride_tricks.as_strided(first, (2, first.size), (first.nbytes, first.itemsize))


def _rows(a: Any) -> Any:
    """(..., n) as (rows, n): the steps' rows of a (T, B, n) array, for one matmul over all."""
    return a.reshape(-1, a.shape[-1])


def _bias_grads(be: Any, d_ih: Any, d_hh: Any, homes: Inputs, needs: Inputs) -> tuple[Any, Any]:
    """b_ih's and b_hh's gradients: the column sums of d_ih and d_hh (T, B, G*H), into their homes.

    When they are equal (d_ih is d_hh; float32/64), both come from one (2, rows) ones vector: one
    matmul, straight into their homes when those lie back to back (an optimizer's flat buffer).
    """
    xp, rows = be.xp, _rows(d_ih)
    if d_ih is not d_hh or not (needs.b_ih and needs.b_hh) or rows.dtype.itemsize < 4:
        gb_ih = column_sums(be, rows, homes.b_ih) if needs.b_ih else None
        return gb_ih, column_sums(be, _rows(d_hh), homes.b_hh) if needs.b_hh else None
    ones = be.ones_vector(2 * len(rows), rows.dtype).reshape(2, -1)
    pair = _pair(xp, homes.b_ih, homes.b_hh)
    if pair is not None or homes.b_ih is None and homes.b_hh is None:
        both = xp.matmul(ones, rows, out=pair)
        return (homes.b_ih, homes.b_hh) if pair is not None else (both[0], both[1])
    return xp.matmul(ones[0], rows, out=homes.b_ih), xp.matmul(ones[1], rows, out=homes.b_hh)


class Elman(Cell):
    """h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), act tanh or relu."""

    def __init__(self, layer: RecurrentLayer, inp: Inputs) -> None:
        super().__init__(layer, inp)
        self.project(inp, inp.b_hh)
        self.relu = layer.mode == "RNN_RELU"
        zero = self.be.scalar(0, self.xw.dtype)  # NumPy takes a 0-d array faster than a 0
        self.act = partial(self.xp.maximum, zero) if self.relu else self.xp.tanh  # relu: max(0, v)
        self.hs = self.out = self.xw  # each step's pre-activation becomes its h in place

    def forward(self, t: int, rec: Any, h_prev: Any) -> Any:
        h = self.hs[t]
        h += 0 if rec is None else rec
        return self.act(h, out=h)

    def start_backward(self, gy: Any) -> None:
        self.act_grad = (self.hs > 0).astype(self.hs.dtype) if self.relu else 1.0 - self.hs**2
        self.d_ih = self.d_hh = gy * self.act_grad  # the output's share; the steps add h_t's

    def backward(self, t: int, gy_t: Any, gh_rec: Any) -> Any:
        if gh_rec is not None:  # (d_hh[t] += .. would also write d_hh[t] back over itself)
            d = self.d_hh[t]
            d += gh_rec * self.act_grad[t]


class Gru(Cell):
    """r, z = sigmoid, n = tanh(x W_in^T + b_in + r * (h' W_hn^T + b_hn)); h = n + z (h' - n)."""

    def __init__(self, layer: RecurrentLayer, inp: Inputs) -> None:
        super().__init__(layer, inp)
        self.project(inp, None)  # b_hh stays inside r * (..)
        self.b_hh, self.h0 = inp.b_hh, inp.h0
        self.hs = self.out = self.xp.empty((*self.row_shape[:2], self.n_h), dtype=inp.x.dtype)
        self.hwn = self.xp.empty_like(self.hs)  # W_hn h' + b_hn per step
        # the gates of all steps as views, made once: the steps slice them by time
        self.rz, self.r, self.z, self.n = self.blocks(self.xw)

    def blocks(self, a: Any) -> tuple[Any, Any, Any, Any]:
        """Views (rz, r, z, n) of the r, z, n blocks along the last axis of a gate array."""
        rz = a[..., : 2 * self.n_h]
        return rz, rz[..., : self.n_h], rz[..., self.n_h :], a[..., 2 * self.n_h :]

    def forward(self, t: int, rec: Any, h_prev: Any) -> Any:
        xp, rz, r, z, n, h = self.xp, self.rz[t], self.r[t], self.z[t], self.n[t], self.hs[t]
        hw = xp.zeros_like(self.xw[t]) if rec is None else rec  # h' W_hh^T + b_hh
        if self.b_hh is not None:
            hw += self.b_hh
        rz += hw[:, : 2 * self.n_h]
        rz *= 0.5  # sigmoid(v) = 0.5 tanh(v / 2) + 0.5, in place
        xp.tanh(rz, out=rz)
        rz *= 0.5
        rz += 0.5
        self.hwn[t] = hw[:, 2 * self.n_h :]
        n += r * self.hwn[t]
        xp.tanh(n, out=n)
        xp.subtract(h_prev, n, out=h)  # (1 - z) n + z h' = n + z (h' - n)
        h *= z
        return xp.add(h, n, out=h)

    def start_backward(self, gy: Any) -> None:
        """With gh the gradient reaching h_t, the gradients of the pre-activations of n, r and z
        are dn = gh K_n, dn K_r and gh K_z: the coefficients K of all steps here."""
        r, z, n = self.r, self.z, self.n
        self.k_n = (1.0 - z) * (1.0 - n * n)
        self.k_r = self.hwn * r * (1.0 - r)
        self.k_z = (self.all_before(self.hs, self.h0) - n) * z * (1.0 - z)
        self.d_ih, self.d_hh = self.xp.empty_like(self.xw), self.xp.empty_like(self.xw)
        self.d_ih_blocks, self.d_hh_blocks = self.blocks(self.d_ih), self.blocks(self.d_hh)

    def backward(self, t: int, gy_t: Any, gh_rec: Any) -> Any:
        gh = gy_t if gh_rec is None else gy_t + gh_rec
        du_rz, du_r, du_z, du_n = (a[t] for a in self.d_ih_blocks)
        dv_rz, _, _, dv_n = (a[t] for a in self.d_hh_blocks)
        self.xp.multiply(gh, self.k_n[t], out=du_n)
        self.xp.multiply(du_n, self.k_r[t], out=du_r)
        self.xp.multiply(gh, self.k_z[t], out=du_z)
        dv_rz[...] = du_rz  # W_hr h and W_hz h enter r and z as x W_ir and x W_iz do
        self.xp.multiply(du_n, self.r[t], out=dv_n)
        return gh * self.z[t]


class Lstm(Cell):
    """i, f, o = sigmoid, g = tanh of the gate blocks; c = f c' + i g; h = o tanh(c).

    The steps work gate-major: the input terms become (T, 4, B, H), so that each gate of a step is
    one contiguous (B, H) block (NumPy runs its ops on those two to three times as fast as on the
    column blocks of a (B, 4H) row). With sigmoid(v) = 0.5 tanh(v / 2) + 0.5, and the i, f, o
    pre-activations halved up front, one tanh and one affine map give all four gates.
    """

    def __init__(self, layer: RecurrentLayer, inp: Inputs) -> None:
        super().__init__(layer, inp)
        t_len, batch, _ = self.row_shape
        self.out = self.xp.empty((t_len + 1, batch, self.n_h), dtype=inp.x.dtype)  # hs, then c_n
        self.hs = self.out[:t_len]
        self.c0, self.c_buf = inp.c0, self.xp.empty_like(self.hs)
        # c per step, in c_buf but for the last step's, c_n, which goes straight into the output
        self.cs = [self.out[-1] if t == self.steps[-1] else c for t, c in enumerate(self.c_buf)]
        self.prepare(inp)
        # the c each step starts from: c_0 at the sequence start, else its neighbour's
        self.c_prev = self.cs[1:] + [self.c0] if self.reverse else [self.c0] + self.cs[:-1]

    def prepare(self, inp: Inputs) -> None:
        """The input terms, gate-major, and w_rec; every sigmoid gate's pre-activation halved."""
        scale = self.be.constant((0.5, 0.5, 1.0, 0.5), self.x.dtype).reshape(4, 1, 1)  # per gate
        w_in = (inp.w_ih.reshape(4, self.n_h, -1) * scale).transpose(0, 2, 1)  # (4, I, H)
        # x_t @ w_in[k] for every step and gate, one batched matmul (NumPy's BLAS wants w_in
        # row-major)
        self.xw = self.xp.matmul(self.x[:, None], self.xp.ascontiguousarray(w_in))
        if inp.b_ih is not None:
            self.xw += (inp.b_ih + inp.b_hh).reshape(4, 1, self.n_h) * scale
        w_rec = (inp.w_hh.reshape(4, self.n_h, self.n_h) * scale).transpose(0, 2, 1)
        self.w_rec = self.xp.ascontiguousarray(w_rec)  # h @ w_rec: the (4, B, H) recurrent terms
        self.tcs = self.xp.empty_like(self.hs)  # tanh(c) per step
        # a step's affine map after its tanh, as (4, B, H) arrays (NumPy broadcasts a (4, 1, 1)
        # operand several times as slowly)
        self.scale = self.xp.broadcast_to(scale, self.xw.shape[1:]).copy()
        self.shift = 1.0 - self.scale

    def forward(self, t: int, rec: Any, h_prev: Any) -> Any:
        xp, a, c, tc, h = self.xp, self.xw[t], self.cs[t], self.tcs[t], self.hs[t]
        a += 0 if rec is None else rec
        xp.tanh(a, out=a)
        a *= self.scale
        a += self.shift
        i, f, g, o = a
        xp.multiply(f, self.c_prev[t], out=c)
        xp.multiply(i, g, out=h)  # h holds i g for a moment
        c += h
        xp.tanh(c, out=tc)
        return xp.multiply(o, tc, out=h)

    def start_backward(self, gy: Any) -> None:
        """With gc the gradient reaching c_t, the gate gradients are gc * K for i, f, g and
        gh * K for o: the coefficients K of all steps here, so that a step is a few products."""
        super().start_backward(gy)
        i, self.f, g, o = self.xw.swapaxes(0, 1)
        self.coef = self.xw * (1.0 - self.xw)  # s (1 - s) for the sigmoid gates
        k_i, k_f, k_g, k_o = self.coef.swapaxes(0, 1)
        k_i *= g
        k_f *= self.all_before(self.c_buf, self.c0)
        k_g[...] = i * (1.0 - g * g)
        k_o *= self.tcs
        self.o_dtc = o * (1.0 - self.tcs**2)  # o (1 - tanh(c)^2): from h back to c
        # the gate gradients (T, B, 4H) seen gate-major, (T, 4, B, H)
        self.d_gates = self.d_hh.reshape(self.row_shape[:2] + (4, self.n_h)).swapaxes(1, 2)
        self.gc = gy[-1].copy()  # the gradient of c_n, then of the c each step started from

    def backward(self, t: int, gy_t: Any, gh_rec: Any) -> Any:
        gh = gy_t if gh_rec is None else gy_t + gh_rec
        gc = gh * self.o_dtc[t] + self.gc
        self.xp.multiply(self.coef[t][:3], gc, out=self.d_gates[t][:3])
        self.xp.multiply(self.coef[t][3], gh, out=self.d_gates[t][3])
        self.gc = gc * self.f[t]


class FusedLstm(Lstm):
    """The LSTM step as a GPU wants it: one fused cell kernel each way (kernels/lstm_cell.cu),
    which adds the input and recurrent terms and the biases, applies the gates and writes c, h and
    the activated gates (over the input terms); backward reads those and writes the gate
    gradients and the gradient reaching c_{t-1}."""

    def prepare(self, inp: Inputs) -> None:
        """The kernel adds the biases; W_hh^T as it is, (H, 4H) column-major, as cuBLAS takes it."""
        self.xw = (self.x_rows @ inp.w_ih.T).reshape(self.row_shape)  # x W_ih^T alone
        self.bias = None if inp.b_ih is None else fused_lstm.Bias(inp.b_ih, inp.b_hh)
        self.w_rec, self.c0 = inp.w_hh.T, self.xp.ascontiguousarray(inp.c0)

    def forward(self, t: int, rec: Any, h_prev: Any) -> Any:
        step = fused_lstm.StepIn(self.xw[t], rec, self.c_prev[t], self.bias)
        fused_lstm.forward(self.be, step, fused_lstm.StepOut(self.xw[t], self.cs[t], self.hs[t]))
        return self.hs[t]

    def start_backward(self, gy: Any) -> None:
        super(Lstm, self).start_backward(gy)
        # the gradient of c_n, then (in gc_buf) of the c each step started from
        self.gc, self.gc_buf = gy[-1], self.xp.empty_like(gy[-1])

    def backward(self, t: int, gy_t: Any, gh_rec: Any) -> Any:
        grad = fused_lstm.GradIn(self.xw[t], self.cs[t], self.c_prev[t], gy_t, gh_rec, self.gc)
        fused_lstm.backward(self.be, grad, fused_lstm.GradOut(self.d_hh[t], self.gc_buf))
        self.gc = self.gc_buf


class RecurrentLayer(Function):
    """Inputs: x (T, B, I), h0 (B, H), [c0 (B, H) for LSTM], w_ih, w_hh, [b_ih, b_hh].

    Output: (T, B, H), the hidden state after every step in time order (for reverse=True the
    sequence is read backwards, so out[0] is the last state). LSTM appends c_n: (T + 1, B, H).
    """

    def __init__(self, mode: str, reverse: bool, has_bias: bool, zero_state: bool = False) -> None:
        self.mode, self.reverse, self.has_bias = mode, reverse, has_bias
        # The caller made h0 (and c0) as zeros: the first step skips its recurrent terms.
        self.zero_state = zero_state
        # the inputs' names in call order: x, h0, [c0], w_ih, w_hh, [b_ih, b_hh]
        present = {"c0": mode == "LSTM", "b_ih": has_bias, "b_hh": has_bias}  # the optional ones
        self.names = [name for name in Inputs._fields if present.get(name, True)]

    def _named(self, values: Any) -> Inputs:
        """The op's inputs (or one value per input) in call order, by name."""
        return Inputs(**dict(zip(self.names, values)))

    def forward(self, *arrays: Any) -> Any:
        inp = self._named(arrays)
        self.x, self.h0, self.w_ih, self.w_hh = inp.x, inp.h0, inp.w_ih, inp.w_hh
        self.steps = range(len(inp.x))[::-1] if self.reverse else range(len(inp.x))
        self.x_rows = _rows(inp.x)
        cells = {"LSTM": FusedLstm if fused_lstm.runs_per_step(self.be) else Lstm, "GRU": Gru}
        self.cell: Cell = cells.get(self.mode, Elman)(self, inp)
        # bound once: at small batches the loop's own overhead is much of its time
        step, w_rec, h_prev = self.cell.forward, self.cell.w_rec, self.h0
        xp, rec_buf = self.be.xp, self.be.xp.empty_like(self.cell.xw[0])  # each h_{t-1} W_hh^T
        skip = self.steps[:1] if self.zero_state else ()  # from a zero h_0: no recurrent terms
        for t in self.steps:
            rec = None if t in skip else xp.matmul(h_prev, w_rec, out=rec_buf)
            h_prev = step(t, rec, h_prev)
        return self.cell.out

    def backward(self, gy: Any) -> Any:
        cell, xp = self.cell, self.be.xp
        needs = self._named(self.needs_input_grad)
        gy = xp.ascontiguousarray(gy)  # (the fused LSTM kernel reads its rows as they lie)
        cell.start_backward(gy)
        skip = () if needs.h0 else self.steps[:1]  # the step from h_0: only if h_0 wants it
        step, d_hh, w_hh = cell.backward, cell.d_hh, self.w_hh  # bound once, as in forward
        # the gradient reaching h_{t-1}, in one buffer; dot (leaner than matmul on small
        # operands: ~0.6 against ~1.2 us at B = 1) writes only into its product's dtype
        gh_rec, gh_buf = None, xp.empty_like(cell.hs[0], dtype=xp.result_type(d_hh, w_hh))
        for t in reversed(self.steps):
            direct = step(t, gy[t], gh_rec)
            if t not in skip:
                gh_rec = xp.dot(d_hh[t], w_hh, out=gh_buf)
                if direct is not None:
                    gh_rec += direct
        # The weight gradients are one matmul each over all steps: (T * B, G*H) rows.
        d_ih = _rows(cell.d_ih)
        # the weights' slots in a flat gradient buffer, if any (Function.grad_home)
        homes = self._named([self.grad_home(i, d_ih.dtype) for i in range(len(self.names))])
        grads = Inputs(
            (d_ih @ self.w_ih).reshape(self.x.shape) if needs.x else None,
            gh_rec if needs.h0 else None,
            cell.gc if needs.c0 else None,
            xp.matmul(d_ih.T, self.x_rows, out=homes.w_ih) if needs.w_ih else None,
            self._recurrent_weight_grad(cell.d_hh, homes.w_hh) if needs.w_hh else None,
            *_bias_grads(self.be, cell.d_ih, cell.d_hh, homes, needs),
        )
        return tuple(getattr(grads, name) for name in self.names)  # in call order

    def _recurrent_weight_grad(self, d_hh: Any, out: Any) -> Any:
        """The gradient of W_hh: the (T, B, G*H) gate gradients^T @ the states their steps
        started from, one matmul. From a zero state the first step adds nothing: it is left out
        (so h_0 needs no place in the states' buffer)."""
        hs = self.cell.hs
        if not self.zero_state:
            prev = self.cell.all_before(hs, self.h0)
        else:  # step t started from hs[t + 1] (reversed) or hs[t - 1]; the first is left out
            d_hh, prev = (d_hh[:-1], hs[1:]) if self.reverse else (d_hh[1:], hs[:-1])
        return self.be.xp.matmul(_rows(d_hh).T, _rows(prev), out=out)  # out: W_hh's home, or None


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
    has_bias = len(weights) == 4
    return RecurrentLayer.apply(
        x, *states, *weights, mode=mode, reverse=reverse, has_bias=has_bias, zero_state=zero_state
    )
