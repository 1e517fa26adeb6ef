"""Every layer of issue 4: bad hyperparameters fail at construction naming the argument and its
valid range; a wrong input names the layer, what it expected and what it got; Dropout is
inverted and off in evaluation; BatchNorm refuses a training batch of one."""

from __future__ import annotations

import numpy as np
import pytest

import gnn
from gnn import nn

# (constructor, the message it must raise): zero-sized layers and out-of-range hyperparameters.
BAD_CONSTRUCTIONS = [
    (lambda: nn.Linear(0, 3), "Linear: in_features must be a positive integer, got 0"),
    (lambda: nn.Linear(3, -1), "Linear: out_features must be a positive integer, got -1"),
    (lambda: nn.Linear(3, 2.5), "Linear: out_features must be a positive integer, got 2.5"),
    (lambda: nn.Conv2d(0, 3, 3), "Conv2d: in_channels must be a positive integer, got 0"),
    (lambda: nn.Conv2d(3, 0, 3), "Conv2d: out_channels must be a positive integer, got 0"),
    (lambda: nn.Conv2d(3, 3, 0), "Conv2d: kernel_size must be an int >= 1 or a pair"),
    (lambda: nn.Conv2d(3, 3, 3, stride=0), "Conv2d: stride must be an int >= 1"),
    (lambda: nn.Conv2d(3, 3, 3, padding=-1), "Conv2d: padding must be an int >= 0"),
    (lambda: nn.Conv2d(3, 3, 3, dilation=0), "Conv2d: dilation must be an int >= 1"),
    (lambda: nn.Conv2d(3, 3, 3, groups=0), "Conv2d: groups must be a positive integer, got 0"),
    (lambda: nn.Conv2d(4, 6, 3, groups=4), r"out_channels \(6\) must both be divisible by grou"),
    (lambda: nn.ConvTranspose2d(2, 0, 3), "ConvTranspose2d: out_channels must be a positive"),
    (
        lambda: nn.ConvTranspose2d(2, 2, 3, stride=2, output_padding=2),
        "ConvTranspose2d: output_padding must be smaller than stride or dilation",
    ),
    (lambda: nn.MaxPool2d(0), "MaxPool2d: kernel_size must be an int >= 1 or a pair"),
    (lambda: nn.MaxPool2d(2, stride=0), "MaxPool2d: stride must be an int >= 1"),
    (lambda: nn.MaxPool2d(2, padding=2), "MaxPool2d: padding must be at most half"),
    (lambda: nn.MaxPool2d(3, dilation=0), "MaxPool2d: dilation must be an int >= 1"),
    (lambda: nn.AvgPool2d(0), "AvgPool2d: kernel_size must be an int >= 1 or a pair"),
    (lambda: nn.AvgPool2d((2, 2), stride=(1, 0)), "AvgPool2d: stride must be an int >= 1"),
    (lambda: nn.AvgPool2d(2, divisor_override=0), "AvgPool2d: divisor_override must be a non"),
    (lambda: nn.BatchNorm1d(0), "BatchNorm1d: num_features must be a positive integer, got 0"),
    (lambda: nn.BatchNorm2d(3, eps=0), "BatchNorm2d: eps must be > 0"),
    (lambda: nn.BatchNorm2d(3, momentum=1.5), r"momentum must be in \[0, 1\] or None"),
    (lambda: nn.LayerNorm(0), "LayerNorm: normalized_shape must be positive ints, got 0"),
    (lambda: nn.LayerNorm((3, 0)), "LayerNorm: normalized_shape must be positive ints"),
    (lambda: nn.Embedding(0, 3), "Embedding: num_embeddings must be a positive integer, got 0"),
    (lambda: nn.Embedding(5, 0), "Embedding: embedding_dim must be a positive integer, got 0"),
    (lambda: nn.Embedding(5, 2, padding_idx=5), r"padding_idx 5 is out of range.*-5\.\.4"),
    (lambda: nn.Dropout(1.0), r"Dropout: dropout probability p must be in \[0, 1\), got 1.0"),
    (lambda: nn.Dropout(-0.1), r"Dropout: dropout probability p must be in \[0, 1\), got -0.1"),
    (lambda: nn.RNN(0, 3), "RNN: input_size must be a positive integer, got 0"),
    (lambda: nn.LSTM(3, 0), "LSTM: hidden_size must be a positive integer, got 0"),
    (lambda: nn.GRU(3, 4, num_layers=0), "GRU: num_layers must be a positive integer, got 0"),
    (lambda: nn.GRU(3, 4, 2, dropout=1.0), r"GRU: dropout probability p must be in \[0, 1\)"),
    (lambda: nn.RNN(3, 4, dropout=-0.5), r"RNN: dropout probability p must be in \[0, 1\)"),
    (lambda: nn.RNN(3, 4, nonlinearity="gelu"), "RNN: nonlinearity must be 'tanh' or 'relu'"),
    (lambda: nn.LSTMCell(3, 0), "LSTMCell: hidden_size must be a positive integer, got 0"),
    (lambda: nn.GELU("fast"), "GELU: approximate must be 'none' or 'tanh', got 'fast'"),
    (lambda: nn.Softmax(dim=1.5), "Softmax: dim must be an int or None"),
    (lambda: nn.LeakyReLU("0.1"), "LeakyReLU: negative_slope must be a number"),
]


@pytest.mark.parametrize("make, message", BAD_CONSTRUCTIONS, ids=[m for _, m in BAD_CONSTRUCTIONS])
def test_bad_hyperparameters_fail_at_construction(make, message) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        make()


# (layer, a wrong input, what the message must say: the layer, expected and got)
BAD_INPUTS = [
    (nn.Linear(4, 3), (2, 5), r"Linear\(in_features=4, out_features=3\): expected 4 .*got 5"),
    (nn.Conv2d(3, 8, 3), (2, 4, 8, 8), r"Conv2d\(3, 8, .*3 channels, got 4 channels"),
    (nn.Conv2d(3, 8, 3), (3, 8), r"Conv2d\(3, 8, .*got a 2-D input"),
    (nn.ConvTranspose2d(2, 4, 3), (1, 3, 5, 5), r"ConvTranspose2d\(2, 4, .*2 channels, got 3"),
    (nn.BatchNorm1d(3), (4, 5), r"BatchNorm1d\(3\): expected 3 channels in dim 1, got 5"),
    (nn.BatchNorm2d(3), (4, 2, 2, 2), r"BatchNorm2d\(3\): expected 3 channels in dim 1, got 2"),
    (nn.BatchNorm2d(3), (4, 3), r"BatchNorm2d: expected 4-D \(N, C, H, W\) input"),
    (nn.LayerNorm(4), (2, 5), r"LayerNorm\(\(4,\)\): expected .*\(4,\), got shape \(2, 5\)"),
    (nn.RNN(3, 4), (5, 2, 2), r"RNN\(input_size=3, hidden_size=4\).*3 features, got 2"),
    (nn.LSTM(3, 4, batch_first=True), (2, 5, 6), r"LSTM.*\(batch, seq, features\).*got 6"),
    (nn.GRU(3, 4), (5, 2, 7), r"GRU\(input_size=3, hidden_size=4\).*3 features, got 7"),
    (nn.LSTMCell(3, 4), (2, 5), r"LSTMCell\(input_size=3, hidden_size=4\): expected input"),
    (nn.MaxPool2d(4), (1, 1, 3, 3), r"max_pool2d: input of spatial size \(3, 3\) is too small"),
]


@pytest.mark.parametrize("layer, shape, message", BAD_INPUTS, ids=[repr(b[0]) for b in BAD_INPUTS])
def test_wrong_input_names_the_layer_expected_and_got(layer, shape, message) -> None:
    with pytest.raises(ValueError, match=message):
        layer(gnn.randn(*shape))


def test_wrong_recurrent_states_are_named() -> None:
    lstm = nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    x = gnn.randn(5, 2, 3)
    with pytest.raises(ValueError, match=r"expected h_0 of shape \(4, 2, 4\).*got \(2, 2, 4\)"):
        lstm(x, (gnn.zeros(2, 2, 4), gnn.zeros(4, 2, 4)))
    with pytest.raises(ValueError, match=r"expected c_0 of shape \(4, 2, 4\).*got \(4, 3, 4\)"):
        lstm(x, (gnn.zeros(4, 2, 4), gnn.zeros(4, 3, 4)))
    with pytest.raises(ValueError, match=r"expected h_0 of shape \(1, 4\)"):  # unbatched
        nn.GRU(3, 4)(gnn.randn(5, 3), gnn.zeros(1, 2, 4))


def test_batch_norm_training_on_a_batch_of_one_says_so() -> None:
    for layer, shape in ((nn.BatchNorm1d(3), (1, 3)), (nn.BatchNorm2d(3), (1, 3, 1, 1))):
        with pytest.raises(ValueError, match="more than 1 value per channel when training") as e:
            layer(gnn.randn(*shape))
        assert "batch of 2 or more, or call .eval()" in str(e.value)
        assert int(layer.num_batches_tracked.item()) == 0  # nothing was updated
        layer.eval()
        assert layer(gnn.randn(*shape)).shape == shape
    # One image with several pixels per channel is a valid batch, as in PyTorch.
    assert nn.BatchNorm2d(3)(gnn.randn(1, 3, 2, 2)).shape == (1, 3, 2, 2)


def test_dropout_is_inverted_and_off_in_eval() -> None:
    gnn.manual_seed(0)
    d = nn.Dropout(0.3)
    x = gnn.ones(400, 250)
    y = d(x).numpy()
    kept = y != 0
    assert 0.28 < 1 - kept.mean() < 0.32
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)  # survivors scaled by 1 / (1 - p)
    assert abs(y.mean() - 1) < 0.01  # the expectation is unchanged
    x = gnn.randn(5, 5, requires_grad=True)
    out = d(x)
    out.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), (out.numpy() != 0) / 0.7, rtol=1e-6)
    d.eval()
    np.testing.assert_array_equal(d(x).numpy(), x.numpy())
    assert nn.Dropout(0.0)(x).numpy().tolist() == x.numpy().tolist()


def test_flatten_identity_and_activation_modules() -> None:
    x = gnn.randn(2, 3, 4, 5)
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(0, 2)(x).shape == (24, 5)
    assert nn.Identity(54, unused="x")(x) is x  # PyTorch's Identity takes any arguments
    assert repr(nn.ReLU(inplace=True)) == "ReLU(inplace=True)"  # PyTorch code passes inplace
    assert repr(nn.LeakyReLU(0.1, inplace=True)) == "LeakyReLU(negative_slope=0.1, inplace=True)"
    v = np.linspace(-3, 3, 13, dtype=np.float32)
    t = gnn.tensor(v)
    np.testing.assert_allclose(nn.ReLU()(t).numpy(), np.maximum(v, 0))
    np.testing.assert_allclose(nn.LeakyReLU(0.2)(t).numpy(), np.where(v > 0, v, 0.2 * v))
    np.testing.assert_allclose(nn.Sigmoid()(t).numpy(), 1 / (1 + np.exp(-v)), rtol=1e-6)
    np.testing.assert_allclose(nn.Tanh()(t).numpy(), np.tanh(v), rtol=1e-6)
    s = nn.Softmax(dim=0)(gnn.tensor(v.reshape(13, 1))).numpy()
    np.testing.assert_allclose(s.sum(axis=0), [1.0], rtol=1e-6)
    with pytest.warns(UserWarning, match="implicit dimension"):
        legacy = nn.Softmax(dim=None)(gnn.tensor(v.reshape(1, 13))).numpy()  # dim 1 for 2-D
    np.testing.assert_allclose(legacy.sum(axis=1), [1.0], rtol=1e-6)


def test_embedding_padding_row_is_zero_and_gets_no_gradient() -> None:
    emb = nn.Embedding(5, 3, padding_idx=-1)
    assert emb.padding_idx == 4
    assert np.all(emb.weight.numpy()[4] == 0)
    emb(gnn.tensor([[4, 1], [1, 4]])).sum().backward()
    assert np.all(emb.weight.grad.numpy()[4] == 0)
    np.testing.assert_array_equal(emb.weight.grad.numpy()[1], [2, 2, 2])
