"""RNN, LSTM, GRU and their cells against the equations written out in NumPy (PyTorch's gate
order), gradient checks of the fused op in every mode and direction, names, init and errors."""

import math

import numpy as np
import pytest

import gnn
from gnn import nn
from gnn.ops.rnn import recurrent_layer
from gnn.testing import gradcheck

rng = np.random.default_rng(0)


def sig(v):
    return 1 / (1 + np.exp(-v))


def ref_step(mode, x, h, c, w_ih, w_hh, b_ih, b_hh):
    """One step of the PyTorch equations; returns (h', c')."""
    gi = x @ w_ih.T + b_ih
    gh = h @ w_hh.T + b_hh
    if mode == "RNN_TANH":
        return np.tanh(gi + gh), None
    if mode == "RNN_RELU":
        return np.maximum(gi + gh, 0), None
    if mode == "LSTM":
        i, f, g, o = np.split(gi + gh, 4, axis=-1)
        c2 = sig(f) * c + sig(i) * np.tanh(g)
        return sig(o) * np.tanh(c2), c2
    ir, iz, in_ = np.split(gi, 3, axis=-1)
    hr, hz, hn = np.split(gh, 3, axis=-1)
    r, z = sig(ir + hr), sig(iz + hz)
    n = np.tanh(in_ + r * hn)
    return (1 - z) * n + z * h, None


def ref_rnn(model, x, h0=None, c0=None):
    """The whole stack on (T, B, I): layers, directions, concatenation; returns out, h_n, c_n."""
    mode, nd, hsz = model.mode, model.num_directions, model.hidden_size
    t_len, batch = x.shape[:2]
    h_n, c_n = [], []
    for k in range(model.num_layers):
        outs = []
        for d in range(nd):
            sfx = f"_l{k}" + ("_reverse" if d else "")
            p = {n: getattr(model, n + sfx).numpy() for n in ("weight_ih", "weight_hh")}
            if model.bias:
                p.update({n: getattr(model, n + sfx).numpy() for n in ("bias_ih", "bias_hh")})
            else:
                p["bias_ih"] = p["bias_hh"] = 0.0
            idx = k * nd + d
            h = np.zeros((batch, hsz)) if h0 is None else h0[idx]
            c = np.zeros((batch, hsz)) if c0 is None else c0[idx]
            out = np.zeros((t_len, batch, hsz))
            for t in range(t_len - 1, -1, -1) if d else range(t_len):
                h, c = ref_step(mode, x[t], h, c, p["weight_ih"], p["weight_hh"],
                                p["bias_ih"], p["bias_hh"])  # fmt: skip
                out[t] = h
            outs.append(out)
            h_n.append(h)
            c_n.append(c)
        x = np.concatenate(outs, axis=2)
    return x, np.stack(h_n), (np.stack(c_n) if mode == "LSTM" else None)


MODELS = [
    ("RNN", {}), ("RNN", {"nonlinearity": "relu"}), ("LSTM", {}), ("GRU", {}),
]  # fmt: skip
VARIANTS = [
    {}, {"num_layers": 2}, {"bidirectional": True}, {"bias": False},
    {"num_layers": 2, "bidirectional": True, "batch_first": True},
]  # fmt: skip


@pytest.mark.parametrize("name,kw", MODELS)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("batch", [2, 9])
def test_stack_matches_numpy(name, kw, variant, with_state, batch):
    gnn.manual_seed(0)
    model = getattr(nn, name)(3, 4, **kw, **variant, dtype="float64")
    n_states = model.num_layers * model.num_directions
    x = rng.standard_normal((5, batch, 3))
    h0 = rng.standard_normal((n_states, batch, 4)) if with_state else None
    c0 = rng.standard_normal((n_states, batch, 4)) if with_state else None
    ref_out, ref_h, ref_c = ref_rnn(model, x, h0, c0)
    xin = x.transpose(1, 0, 2) if model.batch_first else x
    hx = None
    if with_state:
        hx = (gnn.tensor(h0), gnn.tensor(c0)) if name == "LSTM" else gnn.tensor(h0)
    out, state = model(gnn.tensor(xin), hx)
    got = out.numpy().transpose(1, 0, 2) if model.batch_first else out.numpy()
    np.testing.assert_allclose(got, ref_out, rtol=1e-10, atol=1e-12)
    h_n = state[0] if name == "LSTM" else state
    np.testing.assert_allclose(h_n.numpy(), ref_h, rtol=1e-10, atol=1e-12)
    if name == "LSTM":
        np.testing.assert_allclose(state[1].numpy(), ref_c, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", ["RNN_TANH", "RNN_RELU", "LSTM", "GRU"])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batch", [2, 9])
def test_fused_layer_gradcheck(mode, reverse, bias, batch):
    gates = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}[mode] * 3

    def t(*shape):
        return gnn.tensor(rng.standard_normal(shape) * 0.7, requires_grad=True)

    x, h0, c0 = t(4, batch, 2), t(batch, 3), t(batch, 3)
    weights = [t(gates, 2), t(gates, 3)] + ([t(gates), t(gates)] if bias else [])
    if mode == "LSTM":
        fn = lambda x, h0, c0, *w: recurrent_layer(mode, x, h0, c0, list(w), reverse)  # noqa: E731
        assert gradcheck(fn, [x, h0, c0, *weights])
    else:
        fn = lambda x, h0, *w: recurrent_layer(mode, x, h0, None, list(w), reverse)  # noqa: E731
        assert gradcheck(fn, [x, h0, *weights])


@pytest.mark.parametrize("mode", ["RNN_TANH", "LSTM", "GRU"])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("which", ["last", "middle"])
def test_fused_layer_gradcheck_one_step_read(mode, reverse, which):
    """Only one step's state reaches the loss (many-to-one): every other row of the incoming
    gradient is zero, which the backward skips."""
    gates = {"RNN_TANH": 1, "LSTM": 4, "GRU": 3}[mode] * 3

    def t(*shape):
        return gnn.tensor(rng.standard_normal(shape) * 0.7, requires_grad=True)

    x, h0, c0 = t(5, 2, 2), t(2, 3), t(2, 3)
    weights = [t(gates, 2), t(gates, 3), t(gates), t(gates)]
    row = (0 if reverse else 4) if which == "last" else 2
    cell = c0 if mode == "LSTM" else None

    def fn(x, h0, *rest):
        c, w = (rest[0], rest[1:]) if cell is not None else (None, rest)
        return recurrent_layer(mode, x, h0, c, list(w), reverse)[row]

    inputs = [x, h0] + ([c0] if cell is not None else []) + weights
    assert gradcheck(fn, inputs)


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
def test_empty_batch(name):
    """A batch of zero sequences gives empty outputs and zero weight gradients, as in PyTorch."""
    model = getattr(nn, name)(3, 2, num_layers=2, bidirectional=True, batch_first=True)
    x = gnn.tensor(np.zeros((0, 4, 3), np.float32), requires_grad=True)
    out, state = model(x)
    h = state[0] if name == "LSTM" else state
    assert out.shape == (0, 4, 4) and h.shape == (4, 0, 2)
    (out.sum() + h.sum()).backward()
    assert x.grad.shape == (0, 4, 3)
    for n, p in model.named_parameters():
        np.testing.assert_array_equal(p.grad.numpy(), np.zeros(p.shape), err_msg=n)


def test_module_gradcheck_two_layer_bidirectional_lstm():
    gnn.manual_seed(0)
    model = nn.LSTM(2, 3, num_layers=2, bidirectional=True, batch_first=True, dtype="float64")
    names = [n for n, _ in model.named_parameters()]
    x = gnn.tensor(rng.standard_normal((2, 3, 2)), requires_grad=True)
    h0 = gnn.tensor(rng.standard_normal((4, 2, 3)), requires_grad=True)
    c0 = gnn.tensor(rng.standard_normal((4, 2, 3)), requires_grad=True)

    def fn(x, h0, c0, *params):
        for n, p in zip(names, params):
            model._parameters[n] = p  # the float64 copies that gradcheck perturbs
        out, (h, c) = model(x, (h0, c0))
        return out.sum() + (h * 2).sum() + (c * 3).sum()

    assert gradcheck(fn, [x, h0, c0, *model.parameters()])


def test_parameter_names_shapes_and_init():
    gnn.manual_seed(0)
    lstm = nn.LSTM(5, 7, num_layers=2, bidirectional=True)
    names = list(lstm.state_dict())
    assert names[:4] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    assert names[4:8] == [
        "weight_ih_l0_reverse", "weight_hh_l0_reverse", "bias_ih_l0_reverse",
        "bias_hh_l0_reverse",
    ]  # fmt: skip
    assert lstm.weight_ih_l0.shape == (28, 5)
    assert lstm.weight_ih_l1.shape == (28, 14)  # both directions feed layer 1
    assert nn.GRU(5, 7).weight_hh_l0.shape == (21, 7)
    assert nn.RNN(5, 7, bias=False).state_dict().keys() == {"weight_ih_l0", "weight_hh_l0"}
    bound = 1 / math.sqrt(7)
    values = np.concatenate([p.numpy().ravel() for p in lstm.parameters()])
    assert np.abs(values).max() <= bound and np.abs(values).max() > 0.95 * bound
    assert abs(values.mean()) < 0.02  # U(-b, b) is centred


def test_unbatched_input_and_dropout_between_layers():
    gnn.manual_seed(0)
    gru = nn.GRU(3, 4, num_layers=2, dropout=0.5, dtype="float64")
    x = rng.standard_normal((6, 3))
    gru.eval()
    out, h = gru(gnn.tensor(x))
    assert out.shape == (6, 4) and h.shape == (2, 4)
    ref_out, ref_h, _ = ref_rnn(gru, x[:, None, :])
    np.testing.assert_allclose(out.numpy(), ref_out[:, 0], rtol=1e-10)
    gru.train()
    out_train, _ = gru(gnn.tensor(x))
    assert not np.allclose(out_train.numpy(), ref_out[:, 0])  # dropout acts between the layers


@pytest.mark.parametrize("cls,mode", [
    (nn.RNNCell, "RNN_TANH"), (nn.LSTMCell, "LSTM"), (nn.GRUCell, "GRU"),
])  # fmt: skip
def test_cells_match_one_step(cls, mode):
    cell = cls(3, 4, dtype="float64")
    assert list(cell.state_dict()) == ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    x, h, c = rng.standard_normal((2, 3)), rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    p = [cell.weight_ih.numpy(), cell.weight_hh.numpy(), cell.bias_ih.numpy(), cell.bias_hh.numpy()]
    ref_h, ref_c = ref_step(mode, x, h, c, *p)
    if mode == "LSTM":
        got_h, got_c = cell(gnn.tensor(x), (gnn.tensor(h), gnn.tensor(c)))
        np.testing.assert_allclose(got_c.numpy(), ref_c, rtol=1e-10)
    else:
        got_h = cell(gnn.tensor(x), gnn.tensor(h))
    np.testing.assert_allclose(got_h.numpy(), ref_h, rtol=1e-10)
    zero = cell(gnn.tensor(x[0]))  # unbatched, zero state
    ref0, _ = ref_step(mode, x[0], np.zeros(4), np.zeros(4), *p)
    np.testing.assert_allclose((zero[0] if mode == "LSTM" else zero).numpy(), ref0, rtol=1e-10)


def test_errors_are_clear():
    lstm = nn.LSTM(3, 4, num_layers=2)
    with pytest.raises(
        ValueError,
        match=r"LSTM\(input_size=3, hidden_size=4\).*3 features, got 6 features "
        r"\(input shape \(5, 2, 6\)\)",
    ):
        lstm(gnn.randn(5, 2, 6))
    with pytest.raises(ValueError, match=r"expected h_0 of shape \(2, 2, 4\).*got \(1, 2, 4\)"):
        lstm(gnn.randn(5, 2, 3), (gnn.randn(1, 2, 4), gnn.randn(2, 2, 4)))
    with pytest.raises(ValueError, match=r"hx must be a tuple \(h_0, c_0\)"):
        lstm(gnn.randn(5, 2, 3), gnn.randn(2, 2, 4))
    with pytest.raises(ValueError, match="GRU: hidden_size must be a positive integer, got 0"):
        nn.GRU(3, 0)
    with pytest.raises(ValueError, match="RNN: num_layers must be a positive integer"):
        nn.RNN(3, 4, num_layers=0)
    with pytest.raises(ValueError, match="nonlinearity must be 'tanh' or 'relu'"):
        nn.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match=r"dropout probability p must be in \[0, 1\)"):
        nn.LSTM(3, 4, dropout=1.5)
    with pytest.raises(ValueError, match=r"GRUCell.*expected input \(batch, 3\)"):
        nn.GRUCell(3, 4)(gnn.randn(2, 5))
