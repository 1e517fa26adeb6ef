"""nn.init against PyTorch's formulas (bounds, standard deviations, gains, fans), and every layer's
default initialisation against the scheme PyTorch uses for it."""

from __future__ import annotations

import math

import numpy as np
import pytest

import gnn
from gnn import nn
from gnn.nn import init


def _t(*shape: int, dtype: str = "float64") -> gnn.Tensor:
    return gnn.zeros(*shape, dtype=dtype, requires_grad=True)


def _in_bound(values: np.ndarray, bound: float) -> None:
    """U(-bound, bound): inside the bound, filling it (max |v| close to it), centred."""
    n = values.size
    assert np.abs(values).max() <= bound
    assert np.abs(values).max() > min(0.99, max(0.8, 1 - 6 / n)) * bound  # P(fail) < e^-6
    assert abs(values.mean()) < 4 * bound / math.sqrt(3 * n)  # 4 standard deviations


def test_calculate_gain_is_pytorchs_table() -> None:
    for name in ("linear", "conv1d", "conv2d", "conv_transpose2d", "sigmoid"):
        assert init.calculate_gain(name) == 1.0
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01**2)))
    assert init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    assert init.calculate_gain("selu") == 0.75
    with pytest.raises(ValueError, match="unsupported nonlinearity 'swish'"):
        init.calculate_gain("swish")


def test_fill_functions_work_in_place_and_record_no_graph() -> None:
    gnn.manual_seed(0)
    t = _t(200, 300)
    assert init.uniform_(t, -2.0, 3.0) is t
    v = t.numpy()
    assert v.min() >= -2.0 and v.max() < 3.0 and abs(v.mean() - 0.5) < 0.02
    assert t.requires_grad and t.grad is None and t._creator is None
    init.normal_(t, 1.5, 0.5)
    assert abs(t.numpy().mean() - 1.5) < 0.01 and abs(t.numpy().std() - 0.5) < 0.01
    init.constant_(t, 0.25)
    assert np.all(t.numpy() == 0.25)
    init.zeros_(t)
    assert np.all(t.numpy() == 0)
    init.ones_(t)
    assert np.all(t.numpy() == 1)
    f32 = _t(3, 3, dtype="float32")
    init.normal_(f32)
    assert f32.dtype == np.float32


@pytest.mark.parametrize("shape", [(300, 200), (64, 16, 3, 5)])
def test_xavier_and_kaiming_match_pytorchs_formulas(shape) -> None:
    gnn.manual_seed(1)
    receptive = math.prod(shape[2:])
    fan_in, fan_out = shape[1] * receptive, shape[0] * receptive
    t = _t(*shape)
    init.xavier_uniform_(t, gain=2.0)
    _in_bound(t.numpy(), 2.0 * math.sqrt(6 / (fan_in + fan_out)))
    init.xavier_normal_(t, gain=0.5)
    assert t.numpy().std() == pytest.approx(0.5 * math.sqrt(2 / (fan_in + fan_out)), rel=0.02)
    init.kaiming_uniform_(t)  # a=0, fan_in, leaky_relu: gain sqrt(2)
    _in_bound(t.numpy(), math.sqrt(2) * math.sqrt(3 / fan_in))
    init.kaiming_uniform_(t, a=math.sqrt(5))  # the Linear/Conv default: bound 1/sqrt(fan_in)
    _in_bound(t.numpy(), 1 / math.sqrt(fan_in))
    init.kaiming_uniform_(t, mode="fan_out", nonlinearity="relu")
    _in_bound(t.numpy(), math.sqrt(2) * math.sqrt(3 / fan_out))
    init.kaiming_normal_(t, mode="fan_out", nonlinearity="tanh")
    assert t.numpy().std() == pytest.approx(5 / 3 / math.sqrt(fan_out), rel=0.02)
    init.kaiming_normal_(t, a=0.2)
    want = math.sqrt(2 / (1 + 0.04)) / math.sqrt(fan_in)
    assert t.numpy().std() == pytest.approx(want, rel=0.02)


def test_init_errors() -> None:
    with pytest.raises(ValueError, match="at least 2 dims"):
        init.xavier_uniform_(_t(5))
    with pytest.raises(ValueError, match="mode must be 'fan_in' or 'fan_out'"):
        init.kaiming_normal_(_t(3, 3), mode="fan_avg")


# ---- the default initialisation of every layer --------------------------------------------------


def test_linear_and_conv_defaults() -> None:
    gnn.manual_seed(2)
    lin = nn.Linear(400, 300)
    _in_bound(lin.weight.numpy(), 1 / math.sqrt(400))  # kaiming_uniform(a=sqrt(5))
    _in_bound(lin.bias.numpy(), 1 / math.sqrt(400))
    conv = nn.Conv2d(32, 64, (3, 5), groups=4)  # fan_in = 32 / 4 * 3 * 5 = 120
    assert conv.weight.shape == (64, 8, 3, 5)
    _in_bound(conv.weight.numpy(), 1 / math.sqrt(120))
    _in_bound(conv.bias.numpy(), 1 / math.sqrt(120))
    tconv = nn.ConvTranspose2d(32, 48, 3, groups=2)  # PyTorch's fan_in: weight.shape[1] * 9
    assert tconv.weight.shape == (32, 24, 3, 3)
    _in_bound(tconv.weight.numpy(), 1 / math.sqrt(24 * 9))
    _in_bound(tconv.bias.numpy(), 1 / math.sqrt(24 * 9))


@pytest.mark.parametrize(
    "make",
    [
        lambda: nn.RNN(20, 50, num_layers=2, bidirectional=True),
        lambda: nn.LSTM(20, 50),
        lambda: nn.GRU(20, 50, num_layers=2),
        lambda: nn.RNNCell(20, 50),
        lambda: nn.LSTMCell(20, 50),
        lambda: nn.GRUCell(20, 50),
    ],
)
def test_recurrent_defaults_are_uniform_in_one_over_sqrt_hidden(make) -> None:
    gnn.manual_seed(3)
    layer = make()
    for name, p in layer.named_parameters():
        _in_bound(p.numpy(), 1 / math.sqrt(50))
        rel = 2 / math.sqrt(p.numel())  # about 4.5 standard errors of a uniform sample std
        assert p.numpy().std() == pytest.approx(1 / math.sqrt(50 * 3), rel=rel), name


def test_norm_embedding_and_attention_defaults() -> None:
    gnn.manual_seed(4)
    for bn in (nn.BatchNorm1d(7), nn.BatchNorm2d(7)):
        assert np.all(bn.weight.numpy() == 1) and np.all(bn.bias.numpy() == 0)
        assert np.all(bn.running_mean.numpy() == 0) and np.all(bn.running_var.numpy() == 1)
        assert int(bn.num_batches_tracked.item()) == 0
    ln = nn.LayerNorm((4, 5))
    assert np.all(ln.weight.numpy() == 1) and np.all(ln.bias.numpy() == 0)
    emb = nn.Embedding(1000, 64)  # N(0, 1)
    assert abs(emb.weight.numpy().mean()) < 0.01 and emb.weight.numpy().std() == pytest.approx(
        1.0, rel=0.02
    )
    mha = nn.MultiheadAttention(64, 4)  # xavier_uniform in_proj, zero biases
    _in_bound(mha.in_proj_weight.numpy(), math.sqrt(6 / (64 + 192)))
    assert np.all(mha.in_proj_bias.numpy() == 0) and np.all(mha.out_proj.bias.numpy() == 0)
    _in_bound(mha.out_proj.weight.numpy(), 1 / math.sqrt(64))  # Linear's default


def test_reset_parameters_redraws() -> None:
    gnn.manual_seed(5)
    for layer in (nn.Linear(8, 4), nn.Conv2d(2, 3, 3), nn.LSTM(3, 4)):
        before = [p.numpy().copy() for p in layer.parameters()]
        layer.reset_parameters()
        for b, p in zip(before, layer.parameters()):
            assert not np.array_equal(b, p.numpy())
