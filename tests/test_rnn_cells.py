"""The recurrent layers and cells against the cells written in primitives (gnn.nn.rnn_cells):
outputs, final states and every gradient at float64; and the cell modules against PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

import gnn
from gnn import nn
from gnn.nn import rnn_cells

TOL = dict(rtol=1e-10, atol=1e-12)

KINDS = [
    ("RNN", {"nonlinearity": "tanh"}),
    ("RNN", {"nonlinearity": "relu"}),
    ("LSTM", {}),
    ("GRU", {}),
]
LAYOUTS = [  # (layer keyword arguments, batch; None = unbatched input)
    ({}, 3),
    ({"num_layers": 2, "bidirectional": True, "batch_first": True}, 2),
    ({"num_layers": 3, "bias": False}, 9),
    ({"bidirectional": True}, None),
    ({"num_layers": 2, "bidirectional": True, "dropout": 0.5}, 4),  # dropout off in eval
]


def _inputs(layer, batch, with_state, rng, device):
    t_len, dirs = 5, layer.num_layers * layer.num_directions
    lead = () if batch is None else (batch,)
    shape = lead + (t_len,) if layer.batch_first else (t_len,) + lead
    x = gnn.tensor(
        rng.standard_normal(shape + (layer.input_size,)), requires_grad=True, device=device
    )
    if not with_state:
        return x, None, []
    states = [
        gnn.tensor(
            rng.standard_normal((dirs,) + lead + (layer.hidden_size,)),
            requires_grad=True,
            device=device,
        )
        for _ in range(2 if layer.mode == "LSTM" else 1)
    ]
    return x, (tuple(states) if layer.mode == "LSTM" else states[0]), states


def _run(fn, layer, x, hx, leaves, weights):
    """Outputs, and the gradients of a random mix of them for every input and parameter."""
    for t in [x, *leaves, *layer.parameters()]:
        t.grad = None
    out, state = fn(layer, x, hx) if fn is not None else layer(x, hx)
    results = [out, *(state if isinstance(state, tuple) else (state,))]
    loss = sum((r * w).sum() for r, w in zip(results, weights))
    loss.backward()
    grads = [t.grad.numpy() for t in [x, *leaves, *layer.parameters()]]
    return [r.detach().numpy() for r in results], grads


@pytest.mark.parametrize("kind, kw", KINDS)
@pytest.mark.parametrize("layout, batch", LAYOUTS)
@pytest.mark.parametrize("with_state", [False, True])
def test_layer_matches_its_cells(kind, kw, layout, batch, with_state, device) -> None:
    gnn.manual_seed(1)
    layer = getattr(nn, kind)(4, 6, **kw, **layout, dtype="float64", device=device).eval()
    rng = np.random.default_rng(0)
    x, hx, leaves = _inputs(layer, batch, with_state, rng, device)
    zero = gnn.tensor(0.0, dtype="float64", device=device)
    fast_out, fast_grads = _run(None, layer, x, hx, leaves, [zero] * 3)
    weights = [gnn.tensor(rng.standard_normal(o.shape), device=device) for o in fast_out]
    fast_out, fast_grads = _run(None, layer, x, hx, leaves, weights)
    spec_out, spec_grads = _run(rnn_cells.unrolled, layer, x, hx, leaves, weights)
    assert len(fast_out) == len(spec_out) == (3 if kind == "LSTM" else 2)
    for a, b in zip(fast_out, spec_out):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, **TOL)
    assert len(fast_grads) == len(spec_grads) == 1 + len(leaves) + len(list(layer.parameters()))
    for a, b in zip(fast_grads, spec_grads):
        np.testing.assert_allclose(a, b, **TOL)


def test_dropout_between_layers_matches_when_training() -> None:
    layer = nn.LSTM(3, 5, num_layers=2, dropout=0.4, dtype="float64")
    x = gnn.tensor(np.random.default_rng(2).standard_normal((6, 2, 3)))
    gnn.manual_seed(7)
    fast = layer(x)[0].numpy()
    gnn.manual_seed(7)
    spec = rnn_cells.unrolled(layer, x)[0].numpy()
    np.testing.assert_allclose(fast, spec, **TOL)


@pytest.mark.parametrize("cls, mode", [
    (nn.RNNCell, "RNN_TANH"), (nn.LSTMCell, "LSTM"), (nn.GRUCell, "GRU"),
])  # fmt: skip
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_cell_modules_match_the_cell_functions(cls, mode, batched, bias) -> None:
    gnn.manual_seed(3)
    cell = cls(4, 5, bias=bias, dtype="float64")
    rng = np.random.default_rng(4)
    lead = (3,) if batched else ()
    x = gnn.tensor(rng.standard_normal(lead + (4,)), requires_grad=True)
    states = [
        gnn.tensor(rng.standard_normal(lead + (5,)), requires_grad=True)
        for _ in range(2 if mode == "LSTM" else 1)
    ]
    hx = tuple(states) if mode == "LSTM" else states[0]
    params = list(cell.parameters())
    results = []
    for run in (lambda: cell(x, hx), lambda: rnn_cells.cell_step(mode, x, hx, params)):
        for t in [x, *states, *params]:
            t.grad = None
        out = run()
        outs = out if isinstance(out, tuple) else (out,)
        sum((o * (k + 1.5)).sum() for k, o in enumerate(outs)).backward()
        results.append(
            [o.detach().numpy() for o in outs] + [t.grad.numpy() for t in [x, *states, *params]]
        )
    for a, b in zip(*results):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, **TOL)


@pytest.mark.parametrize("name", ["RNNCell", "LSTMCell", "GRUCell"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batched", [True, False])
def test_cell_modules_match_pytorch(name, bias, batched) -> None:
    torch = pytest.importorskip("torch")
    kw = {"nonlinearity": "relu"} if name == "RNNCell" and bias else {}
    cell = getattr(nn, name)(4, 5, bias=bias, dtype="float64", **kw)
    ref = getattr(torch.nn, name)(4, 5, bias=bias, dtype=torch.float64, **kw)
    sd = cell.state_dict()
    assert set(sd) == set(ref.state_dict())  # PyTorch's key names
    ref.load_state_dict({k: torch.tensor(v.numpy()) for k, v in sd.items()})
    rng = np.random.default_rng(5)
    lead = (3,) if batched else ()
    x_np = rng.standard_normal(lead + (4,))
    states_np = [rng.standard_normal(lead + (5,)) for _ in range(2 if name == "LSTMCell" else 1)]
    for with_state in (False, True):
        x, rx = gnn.tensor(x_np, requires_grad=True), torch.tensor(x_np, requires_grad=True)
        s = [gnn.tensor(a, requires_grad=True) for a in states_np]
        rs = [torch.tensor(a, requires_grad=True) for a in states_np]
        pack = (lambda v: tuple(v)) if name == "LSTMCell" else (lambda v: v[0])
        out = cell(x, pack(s) if with_state else None)
        rout = ref(rx, pack(rs) if with_state else None)
        outs = out if isinstance(out, tuple) else (out,)
        routs = rout if isinstance(rout, tuple) else (rout,)
        sum((o * (k + 2.0)).sum() for k, o in enumerate(outs)).backward()
        sum((o * (k + 2.0)).sum() for k, o in enumerate(routs)).backward()
        for o, r in zip(outs, routs):
            np.testing.assert_allclose(o.detach().numpy(), r.detach().numpy(), **TOL)
        pairs = list(zip(cell.parameters(), ref.parameters())) + [(x, rx)]
        pairs += list(zip(s, rs)) if with_state else []
        for a, b in pairs:
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), **TOL)
        for t in [*cell.parameters(), *ref.parameters()]:
            t.grad = None
