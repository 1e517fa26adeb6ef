"""The recurrent cells in primitives: the readable spec of gnn's RNN, LSTM and GRU.

Each cell is one time step with PyTorch's gate order and formulas, written with gnn ops so that
autograd supplies the backward. The fused layers (gnn.ops.rnn) compute the same thing in one
hand-written op per layer and direction, because a Python loop of small ops costs about three
times as much (measured as gnn/ops/rnn.py says); tests/test_rnn_cells.py holds them to
`unrolled`, which runs a whole recurrent layer through these cells.
"""

from __future__ import annotations

from typing import Any

from gnn import creation
from gnn import functional as F
from gnn.tensor import Tensor


def rnn_cell(
    x: Tensor,
    h: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
    nonlinearity: str = "tanh",
) -> Tensor:
    """h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh), act tanh or relu."""
    pre = F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)
    return F.tanh(pre) if nonlinearity == "tanh" else F.relu(pre)


def lstm_cell(
    x: Tensor,
    state: tuple[Tensor, Tensor],
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """(h', c') from (h, c); gate blocks i, f, g, o of W_ih and W_hh, as PyTorch's."""
    h, c = state
    i, f, g, o = (F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)).chunk(4, dim=-1)
    c_next = F.sigmoid(f) * c + F.sigmoid(i) * F.tanh(g)
    return F.sigmoid(o) * F.tanh(c_next), c_next


def gru_cell(
    x: Tensor,
    h: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
) -> Tensor:
    """h' = (1 - z) n + z h; gate blocks r, z, n, with r applied after W_hn h + b_hn (PyTorch's)."""
    x_r, x_z, x_n = F.linear(x, w_ih, b_ih).chunk(3, dim=-1)
    h_r, h_z, h_n = F.linear(h, w_hh, b_hh).chunk(3, dim=-1)
    r = F.sigmoid(x_r + h_r)
    z = F.sigmoid(x_z + h_z)
    n = F.tanh(x_n + r * h_n)
    return (1 - z) * n + z * h


def cell_step(mode: str, x: Tensor, state: Any, weights: list[Tensor]) -> Any:
    """One step of `mode` ("RNN_TANH", "RNN_RELU", "LSTM", "GRU"); weights [w_ih, w_hh, (b's)].

    state and the result are h, or (h, c) for the LSTM.
    """
    if mode == "LSTM":
        return lstm_cell(x, state, *weights)
    if mode == "GRU":
        return gru_cell(x, state, *weights)
    # the biases by name: *weights before a keyword could, for mypy, also fill nonlinearity
    b_ih = weights[2] if len(weights) > 2 else None
    b_hh = weights[3] if len(weights) > 3 else None
    act = "tanh" if mode == "RNN_TANH" else "relu"
    return rnn_cell(x, state, weights[0], weights[1], b_ih, b_hh, nonlinearity=act)


def unrolled(layer: Any, input: Tensor, hx: Any = None) -> tuple:
    """What `layer(input, hx)` returns (an nn.RNN, LSTM or GRU), computed step by step in cells.

    The spec of the layers' wiring: layer k reads the outputs of layer k - 1 (both directions
    concatenated, dropout between layers when training); the reverse direction reads the
    sequence backwards and writes each output at its own time step; h_n (and c_n) hold each
    layer and direction's last state, in the order l0, l0_reverse, l1, ...
    """
    lstm = layer.mode == "LSTM"
    batched = input.ndim == 3
    x = input if batched else input.unsqueeze(1)
    if batched and layer.batch_first:
        x = x.transpose(0, 1)  # (T, B, I)
    t_len, batch = x.shape[0], x.shape[1]
    h0, c0 = (hx if lstm else (hx, None)) if hx is not None else (None, None)
    if h0 is not None and not batched:
        h0, c0 = h0.unsqueeze(1), (c0.unsqueeze(1) if c0 is not None else None)
    zeros = creation.zeros(batch, layer.hidden_size, dtype=x.dtype, device=x.device)
    last_h, last_c = [], []
    for k in range(layer.num_layers):
        outs = []
        for d in range(layer.num_directions):
            idx = k * layer.num_directions + d
            sfx = f"_l{k}" + ("_reverse" if d else "")
            names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if layer.bias else [])
            weights = [getattr(layer, n + sfx) for n in names]
            h = zeros if h0 is None else h0[idx]
            state: Any = (h, zeros if c0 is None else c0[idx]) if lstm else h
            ys: list[Tensor] = [zeros] * t_len
            for t in reversed(range(t_len)) if d else range(t_len):
                state = cell_step(layer.mode, x[t], state, weights)
                ys[t] = state[0] if lstm else state
            outs.append(F.stack(ys, 0))
            last_h.append(state[0] if lstm else state)
            if lstm:
                last_c.append(state[1])
        x = outs[0] if len(outs) == 1 else F.cat(outs, dim=2)
        if layer.dropout and layer.training and k < layer.num_layers - 1:
            x = F.dropout(x, layer.dropout, True)
    out, h_n = x, F.stack(last_h, 0)
    c_n = F.stack(last_c, 0) if lstm else None
    if batched and layer.batch_first:
        out = out.transpose(0, 1)
    if not batched:
        out, h_n = out.squeeze(1), h_n.squeeze(1)
        c_n = c_n.squeeze(1) if c_n is not None else None
    return (out, (h_n, c_n)) if lstm else (out, h_n)
