"""Issue 17: every layer on random valid-but-unusual inputs (batch 1, empty batch, odd sizes).

In training and in eval mode each layer either computes (outputs of the expected leading size,
finite for finite inputs, and a backward that gives every parameter a gradient of its shape) or
refuses with a clear gnn error (a TypeError, ValueError, IndexError or RuntimeError raised by
gnn's own code), never a crash from deep inside NumPy.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gnn
from gnn import nn

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

SETTINGS = settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
GNN_DIR = os.path.dirname(gnn.__file__)
CLEAR = (TypeError, ValueError, IndexError, RuntimeError)

BATCH = st.sampled_from([0, 1, 2, 3, 5])
SIZE = st.integers(1, 7)  # odd and tiny sizes included


def _x(rng: np.random.Generator, *shape: int) -> gnn.Tensor:
    return gnn.tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=True)


# Each entry: draw -> (module, rng -> inputs for a batch of b, index of the batch dim in output)
def _linear(d):
    i, o = d(SIZE), d(SIZE)
    return nn.Linear(i, o), lambda r, b: (_x(r, b, i),)


def _conv(d):
    cin, cout, k = d(st.integers(1, 3)), d(st.integers(1, 3)), d(st.integers(1, 3))
    stride, pad = d(st.integers(1, 2)), d(st.integers(0, 1))
    h, w = d(st.integers(k, 7)), d(st.integers(k, 7))
    return nn.Conv2d(cin, cout, k, stride=stride, padding=pad), lambda r, b: (_x(r, b, cin, h, w),)


def _deconv(d):
    cin, cout, k = d(st.integers(1, 3)), d(st.integers(1, 3)), d(st.integers(1, 3))
    stride = d(st.integers(1, 2))
    h, w = d(st.integers(1, 5)), d(st.integers(1, 5))
    layer = nn.ConvTranspose2d(cin, cout, k, stride=stride)
    return layer, lambda r, b: (_x(r, b, cin, h, w),)


def _pool(kind):
    def make(d):
        k = d(st.integers(1, 3))
        c, h, w = d(st.integers(1, 3)), d(st.integers(k, 7)), d(st.integers(k, 7))
        return kind(k), lambda r, b: (_x(r, b, c, h, w),)

    return make


def _bn1d(d):
    c = d(SIZE)
    return nn.BatchNorm1d(c), lambda r, b: (_x(r, b, c),)


def _bn2d(d):
    c, h, w = d(st.integers(1, 3)), d(st.integers(1, 4)), d(st.integers(1, 4))
    return nn.BatchNorm2d(c), lambda r, b: (_x(r, b, c, h, w),)


def _layernorm(d):
    n = d(SIZE)
    return nn.LayerNorm(n), lambda r, b: (_x(r, b, n),)


def _pointwise(factory: Callable[[], nn.Module]):
    def make(d):
        shape = d(st.lists(SIZE, min_size=1, max_size=3))
        return factory(), lambda r, b: (_x(r, b, *shape),)

    return make


def _embedding(d):
    num, dim, t = d(SIZE), d(SIZE), d(st.integers(1, 4))
    layer = nn.Embedding(num, dim)
    return layer, lambda r, b: (gnn.tensor(r.integers(0, num, (b, t))),)


def _recurrent(kind):
    def make(d):
        i, h, t = d(SIZE), d(SIZE), d(st.integers(1, 4))
        layers, bidir = d(st.integers(1, 2)), d(st.booleans())
        layer = kind(i, h, num_layers=layers, batch_first=True, bidirectional=bidir)
        return layer, lambda r, b: (_x(r, b, t, i),)

    return make


def _cell(kind):
    def make(d):
        i, h = d(SIZE), d(SIZE)
        return kind(i, h), lambda r, b: (_x(r, b, i),)

    return make


def _attention(d):
    heads, per_head, t, s = d(st.integers(1, 3)), d(st.integers(1, 3)), d(SIZE), d(SIZE)
    e = heads * per_head
    layer = nn.MultiheadAttention(e, heads, batch_first=True)
    return layer, lambda r, b: (_x(r, b, t, e), _x(r, b, s, e), _x(r, b, s, e))


def _encoder_layer(d):
    heads, per_head, t = d(st.integers(1, 2)), d(st.integers(1, 3)), d(SIZE)
    e = heads * per_head
    layer = nn.TransformerEncoderLayer(e, heads, dim_feedforward=d(SIZE), batch_first=True)
    return layer, lambda r, b: (_x(r, b, t, e),)


def _positional(d):
    half, t = d(st.integers(1, 4)), d(SIZE)
    layer = nn.PositionalEncoding(2 * half, dropout=0.0, max_len=16, batch_first=True)
    return layer, lambda r, b: (_x(r, b, t, 2 * half),)


def _flatten(d):
    shape = d(st.lists(SIZE, min_size=1, max_size=3))
    return nn.Flatten(), lambda r, b: (_x(r, b, *shape),)


LAYERS = {
    "Linear": _linear,
    "Conv2d": _conv,
    "ConvTranspose2d": _deconv,
    "MaxPool2d": _pool(nn.MaxPool2d),
    "AvgPool2d": _pool(nn.AvgPool2d),
    "BatchNorm1d": _bn1d,
    "BatchNorm2d": _bn2d,
    "LayerNorm": _layernorm,
    "ReLU": _pointwise(nn.ReLU),
    "GELU": _pointwise(nn.GELU),
    "Tanh": _pointwise(nn.Tanh),
    "Sigmoid": _pointwise(nn.Sigmoid),
    "LeakyReLU": _pointwise(lambda: nn.LeakyReLU(0.1)),
    "Softmax": _pointwise(lambda: nn.Softmax(dim=-1)),
    "LogSoftmax": _pointwise(lambda: nn.LogSoftmax(dim=-1)),
    "Dropout": _pointwise(lambda: nn.Dropout(0.5)),
    "Identity": _pointwise(nn.Identity),
    "Flatten": _flatten,
    "Embedding": _embedding,
    "RNN": _recurrent(nn.RNN),
    "LSTM": _recurrent(nn.LSTM),
    "GRU": _recurrent(nn.GRU),
    "RNNCell": _cell(nn.RNNCell),
    "LSTMCell": _cell(nn.LSTMCell),
    "GRUCell": _cell(nn.GRUCell),
    "MultiheadAttention": _attention,
    "TransformerEncoderLayer": _encoder_layer,
    "PositionalEncoding": _positional,
}


def _is_clear_gnn_error(exc: BaseException) -> bool:
    frames = traceback.extract_tb(exc.__traceback__)
    return isinstance(exc, CLEAR) and bool(frames) and frames[-1].filename.startswith(GNN_DIR)


def _tensors(out) -> list[gnn.Tensor]:
    if isinstance(out, gnn.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _tensors(o)]
    return []


@pytest.mark.parametrize("name", list(LAYERS))
@SETTINGS
@given(data=st.data(), batch=BATCH, train=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_layers_on_unusual_valid_inputs(name, data, batch, train, seed) -> None:
    gnn.manual_seed(seed)
    layer, make_inputs = LAYERS[name](data.draw)
    layer.train(train)
    inputs = make_inputs(np.random.default_rng(seed), batch)
    try:
        out = layer(*inputs)
    except CLEAR as exc:
        assert _is_clear_gnn_error(exc), "".join(traceback.format_exception(exc))
        return
    outs = _tensors(out)
    assert outs, f"{name} returned {type(out).__name__}"
    first = outs[0]
    lead = first.shape[0] if first.ndim else None
    if "Cell" not in name or batch:  # cells may return (B, H) for B = 0 too
        assert lead == batch, f"{name}: output {first.shape} for a batch of {batch}"
    assert np.isfinite(first.numpy()).all(), f"{name}: non-finite output for finite input"
    if first.requires_grad and first.numel():
        first.sum().backward()
        for pname, p in layer.named_parameters():
            if p.grad is not None:
                assert p.grad.shape == p.shape, f"{name}: {pname} gradient {p.grad.shape}"
                assert np.isfinite(p.grad.numpy()).all(), f"{name}: {pname} gradient not finite"
