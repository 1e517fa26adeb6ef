"""Recurrent layers: RNN (tanh/relu), LSTM, GRU and their one-step cells, with PyTorch's API.

Parameter names, shapes, gate order and init match PyTorch, so state dicts carry over. Each layer
and direction runs as one fused op over the whole sequence (gnn.ops.rnn).
"""

from __future__ import annotations

import math
from typing import Any

from gnn import config, creation
from gnn import functional as F
from gnn.nn import init
from gnn.nn.dropout import check_dropout
from gnn.nn.linear import check_positive
from gnn.nn.module import Module
from gnn.nn.parameter import Parameter
from gnn.ops.rnn import GATES, recurrent_layer
from gnn.tensor import Tensor


class LayerRun:
    """The fused op's result for one layer and direction, by name (each read is one slice op,
    made only when asked for)."""

    def __init__(self, y: Tensor, t_len: int, reverse: bool, lstm: bool) -> None:
        self._y, self._t_len, self._reverse, self._lstm = y, t_len, reverse, lstm

    @property
    def out(self) -> Tensor:
        """(T, B, H): the hidden state after every step, in time order."""
        return self._y[: self._t_len] if self._lstm else self._y

    @property
    def h_n(self) -> Tensor:
        """(B, H): the last state (for the reverse direction, the one at time 0)."""
        return self._y[0 if self._reverse else self._t_len - 1]

    @property
    def c_n(self) -> Tensor | None:
        """(B, H): the LSTM's last cell state, which the op appends as row T; None otherwise."""
        return self._y[self._t_len] if self._lstm else None


_ZERO_STATES: dict[tuple, Tensor] = {}  # (device, batch, hidden, dtype) -> zeros, see below


def _zero_state(x: Tensor, batch: int, hidden: int) -> Tensor:
    """The zero (batch, hidden) initial state, made once per backend, shape and dtype and shared
    (the recurrent ops only read it): no memset per forward."""
    key = (str(x.device), batch, hidden, x.dtype)
    zeros = _ZERO_STATES.get(key)
    if zeros is None:
        if len(_ZERO_STATES) >= 8:
            _ZERO_STATES.clear()  # many distinct batch sizes: start afresh
        zeros = creation.zeros(batch, hidden, dtype=x.dtype, device=x.device)
        _ZERO_STATES[key] = zeros
    return zeros


def run_layer(
    mode: str,
    x: Tensor,
    h0: Tensor,
    c0: Tensor | None,
    weights: list[Tensor],
    reverse: bool,
    zero_state: bool = False,
) -> LayerRun:
    """Run the fused op of one layer and direction over x (T, B, I).

    zero_state: h0 (and c0) are zeros made here, so the op may skip the first recurrent terms.
    """
    y = recurrent_layer(mode, x, h0, c0, weights, reverse=reverse, zero_state=zero_state)
    return LayerRun(y, x.shape[0], reverse, mode == "LSTM")


class RNNBase(Module):
    """Shared by RNN, LSTM and GRU: parameters per layer and direction, states, the layer loop."""

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        layer = self._layer_name(mode)
        check_positive(layer, input_size=input_size, hidden_size=hidden_size, num_layers=num_layers)
        if proj_size:
            raise NotImplementedError(f"{layer}: proj_size is not supported in gnn")
        self.mode, self.input_size, self.hidden_size = mode, input_size, hidden_size
        self.num_layers, self.bias, self.batch_first = num_layers, bias, batch_first
        self.dropout = check_dropout(layer, dropout)
        self.bidirectional, self.proj_size = bidirectional, proj_size
        dtype = dtype or config.get_default_dtype()
        gates = GATES[mode] * hidden_size
        self._flat_names: list[list[str]] = []  # per (layer, direction): its parameter names
        for k in range(num_layers):
            for d in range(self.num_directions):
                sfx = f"_l{k}" + ("_reverse" if d else "")
                n_in = input_size if k == 0 else hidden_size * self.num_directions
                shapes: dict[str, tuple[int, ...]] = {
                    f"weight_ih{sfx}": (gates, n_in),
                    f"weight_hh{sfx}": (gates, hidden_size),
                }
                if bias:
                    shapes.update({f"bias_ih{sfx}": (gates,), f"bias_hh{sfx}": (gates,)})
                for name, shape in shapes.items():
                    setattr(self, name, Parameter(creation.empty(shape, dtype, device)))
                self._flat_names.append(list(shapes))
        self.reset_parameters()

    @staticmethod
    def _layer_name(mode: str) -> str:
        return "RNN" if mode.startswith("RNN") else mode

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def reset_parameters(self) -> None:
        """Every weight and bias from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), as PyTorch."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def _state_shape(self, batch: int | None) -> tuple:
        n = self.num_layers * self.num_directions
        return (n, self.hidden_size) if batch is None else (n, batch, self.hidden_size)

    def _check_state(self, name: str, h: Tensor, batch: int | None) -> None:
        want = self._state_shape(batch)
        if tuple(h.shape) != want:
            raise ValueError(
                f"{self._layer_name(self.mode)}: expected {name} of shape {want} "
                f"(num_layers * num_directions, batch, hidden_size), got {h.shape}"
            )

    def flatten_parameters(self) -> None:
        """Nothing to do: PyTorch packs weights for cuDNN here; gnn reads them as they are."""

    def forward(self, input: Tensor, hx: Any = None) -> tuple:
        layer = self._layer_name(self.mode)
        lstm = self.mode == "LSTM"
        if input.ndim not in (2, 3) or input.shape[-1] != self.input_size:
            order = "(batch, seq, features)" if self.batch_first else "(seq, batch, features)"
            got = f"{input.shape[-1]} features" if input.ndim in (2, 3) else f"{input.ndim}-D"
            raise ValueError(
                f"{layer}(input_size={self.input_size}, hidden_size={self.hidden_size}): expected "
                f"input {order} or (seq, features) with {self.input_size} features, "
                f"got {got} (input shape {input.shape})"
            )
        batched = input.ndim == 3
        x = input if batched else input.unsqueeze(1)
        if batched and self.batch_first:
            x = x.transpose(0, 1)  # (T, B, I)
        t_len, batch = x.shape[0], x.shape[1]
        if t_len == 0:
            raise ValueError(f"{layer}: the input sequence is empty (shape {input.shape})")
        h0 = c0 = None
        if hx is not None:
            if lstm:
                if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                    raise ValueError("LSTM: hx must be a tuple (h_0, c_0)")
                h0, c0 = hx
                self._check_state("c_0", c0, batch if batched else None)
            else:
                h0 = hx
            self._check_state("h_0", h0, batch if batched else None)
            if not batched:
                h0 = h0.unsqueeze(1)
                c0 = c0.unsqueeze(1) if c0 is not None else None
        # Each (layer, direction)'s initial states: h_0[idx] when given, else the shared zeros.
        n_states = self.num_layers * self.num_directions
        h_starts: Tensor | list[Tensor] = (
            h0 if h0 is not None else [_zero_state(x, batch, self.hidden_size)] * n_states
        )
        c_starts: Tensor | list[Tensor] | None = None
        if lstm:
            c_starts = (
                c0 if c0 is not None else [_zero_state(x, batch, self.hidden_size)] * n_states
            )

        h_n, c_n = [], []
        for k in range(self.num_layers):
            outs = []
            for d in range(self.num_directions):
                idx = k * self.num_directions + d
                weights = [getattr(self, n) for n in self._flat_names[idx]]
                h_start = h_starts[idx]
                c_start = c_starts[idx] if c_starts is not None else None
                run = run_layer(
                    self.mode, x, h_start, c_start, weights, bool(d), zero_state=hx is None
                )
                outs.append(run.out)
                h_n.append(run.h_n)
                if lstm:
                    c_n.append(run.c_n)
            x = outs[0] if len(outs) == 1 else F.cat(outs, dim=2)
            if self.dropout and self.training and k < self.num_layers - 1:
                x = F.dropout(x, self.dropout, True)

        out = x
        if batched and self.batch_first:
            out = out.transpose(0, 1)
        h = F.stack(h_n, 0)
        c = F.stack(c_n, 0) if lstm else None
        if not batched:
            out, h = out.squeeze(1), h.squeeze(1)
            c = c.squeeze(1) if c is not None else None
        return (out, (h, c)) if lstm else (out, h)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.mode == "RNN_RELU":
            s += ", nonlinearity='relu'"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


class RNN(RNNBase):
    """Elman RNN: h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) (or relu)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(
            "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size,
            num_layers, bias, batch_first, dropout, bidirectional, 0, device, dtype,
        )  # fmt: skip
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """Long short-term memory; returns (output, (h_n, c_n)). Gates i, f, g, o as PyTorch."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(
            "LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout,
            bidirectional, proj_size, device, dtype,
        )  # fmt: skip


class GRU(RNNBase):
    """Gated recurrent unit; returns (output, h_n). Gates r, z, n as PyTorch."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(
            "GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout,
            bidirectional, 0, device, dtype,
        )  # fmt: skip


# ---- cells (one time step) ----------------------------------------------------------------------


class RNNCellBase(Module):
    """Shared by the cells: weight_ih, weight_hh, bias_ih, bias_hh (no layer suffix)."""

    def __init__(
        self, mode: str, input_size: int, hidden_size: int, bias: bool, device: Any, dtype: Any
    ) -> None:
        super().__init__()
        layer = {"LSTM": "LSTMCell", "GRU": "GRUCell"}.get(mode, "RNNCell")
        check_positive(layer, input_size=input_size, hidden_size=hidden_size)
        self.mode, self.input_size, self.hidden_size, self.bias = (
            mode,
            input_size,
            hidden_size,
            bias,
        )
        dtype = dtype or config.get_default_dtype()
        gates = GATES[mode] * hidden_size
        self.weight_ih = Parameter(creation.empty((gates, input_size), dtype, device))
        self.weight_hh = Parameter(creation.empty((gates, hidden_size), dtype, device))
        if bias:
            self.bias_ih = Parameter(creation.empty((gates,), dtype, device))
            self.bias_hh = Parameter(creation.empty((gates,), dtype, device))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self._layer = layer
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)) for every parameter, as PyTorch."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def _step(self, x: Tensor, hx: Any) -> LayerRun:
        """Run one step as a one-step sequence (the fused op: on a step's forward and backward,
        batch 32, 32 -> 64 units, the cells of gnn.nn.rnn_cells took 0.9 (RNNCell), 1.3 (LSTMCell)
        and 1.35 (GRUCell) times as long; CPU time, 2-vCPU VM, 2026-12-04)."""
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(
                f"{self._layer}(input_size={self.input_size}, hidden_size={self.hidden_size}): "
                f"expected input (batch, {self.input_size}) or ({self.input_size},), "
                f"got input shape {x.shape}"
            )
        batched = x.ndim == 2
        xb = x if batched else x.unsqueeze(0)
        batch = xb.shape[0]
        want = (batch, self.hidden_size) if batched else (self.hidden_size,)
        states = list(hx) if isinstance(hx, (tuple, list)) else [hx]
        n_states = 2 if self.mode == "LSTM" else 1
        if hx is None:
            zeros = _zero_state(x, batch, self.hidden_size)
            states = [zeros] * n_states
        else:
            if len(states) != n_states:
                raise ValueError(f"{self._layer}: expected {n_states} state tensor(s) in hx")
            for s in states:
                if tuple(s.shape) != want:
                    raise ValueError(
                        f"{self._layer}: expected hidden state of shape {want}, got {s.shape}"
                    )
            if not batched:
                states = [s.unsqueeze(0) for s in states]
        weights: list[Tensor] = [self.weight_ih, self.weight_hh]
        if self.bias:
            weights += [self.bias_ih, self.bias_hh]
        c0 = states[1] if self.mode == "LSTM" else None
        self._batched = batched
        return run_layer(
            self.mode, xb.unsqueeze(0), states[0], c0, weights, False, zero_state=hx is None
        )

    def _unbatch(self, t: Tensor) -> Tensor:
        return t if self._batched else t.squeeze(0)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class RNNCell(RNNCellBase):
    """One Elman RNN step: h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh) (or relu)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(
                f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}"
            )
        mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        super().__init__(mode, input_size, hidden_size, bias, device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        return self._unbatch(self._step(input, hx).h_n)


class LSTMCell(RNNCellBase):
    """One LSTM step: returns (h', c')."""

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, device: Any = None,
        dtype: Any = None,
    ) -> None:  # fmt: skip
        super().__init__("LSTM", input_size, hidden_size, bias, device, dtype)

    def forward(self, input: Tensor, hx: Any = None) -> tuple[Tensor, Tensor]:
        run = self._step(input, hx)
        assert run.c_n is not None  # run_layer returns c_n for an LSTM, which this cell is
        return self._unbatch(run.h_n), self._unbatch(run.c_n)


class GRUCell(RNNCellBase):
    """One GRU step: returns h'."""

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, device: Any = None,
        dtype: Any = None,
    ) -> None:  # fmt: skip
        super().__init__("GRU", input_size, hidden_size, bias, device, dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        return self._unbatch(self._step(input, hx).h_n)
