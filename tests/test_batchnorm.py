"""F.batch_norm, BatchNorm1d and BatchNorm2d against NumPy written out by hand, running
statistics step by step, gradient checks in training and evaluation, and the errors."""

import numpy as np
import pytest

import gnn
import gnn.functional as F
from gnn import nn
from gnn.testing import gradcheck

rng = np.random.default_rng(0)


def ref_bn_train(x, w, b, eps):
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mu = x.mean(axis=axes)
    var = x.var(axis=axes)
    y = (x - mu.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    return y * w.reshape(shape) + b.reshape(shape), mu, var


@pytest.mark.parametrize("cls,shape", [
    (nn.BatchNorm1d, (5, 3)), (nn.BatchNorm1d, (4, 3, 6)), (nn.BatchNorm2d, (3, 3, 4, 5)),
])  # fmt: skip
def test_training_steps_running_stats_and_eval(cls, shape):
    bn = cls(3, momentum=0.2, dtype="float64")
    bn.weight.array[...] = rng.standard_normal(3)
    bn.bias.array[...] = rng.standard_normal(3)
    w, b = bn.weight.numpy().copy(), bn.bias.numpy().copy()
    run_mean, run_var = np.zeros(3), np.ones(3)
    n = int(np.prod(shape)) // 3
    for _ in range(3):
        x = rng.standard_normal(shape) * 2 + 1
        out = bn(gnn.tensor(x))
        ref, mu, var = ref_bn_train(x, w, b, 1e-5)
        np.testing.assert_allclose(out.numpy(), ref, rtol=1e-10, atol=1e-10)
        run_mean = 0.8 * run_mean + 0.2 * mu
        run_var = 0.8 * run_var + 0.2 * var * n / (n - 1)  # unbiased, as PyTorch
    np.testing.assert_allclose(bn.running_mean.numpy(), run_mean, rtol=1e-12)
    np.testing.assert_allclose(bn.running_var.numpy(), run_var, rtol=1e-12)
    assert int(bn.num_batches_tracked.item()) == 3
    bn.eval()
    x = rng.standard_normal(shape)
    sh = (1, -1) + (1,) * (len(shape) - 2)
    ref = (x - run_mean.reshape(sh)) / np.sqrt(run_var.reshape(sh) + 1e-5) * w.reshape(sh)
    np.testing.assert_allclose(bn(gnn.tensor(x)).numpy(), ref + b.reshape(sh), rtol=1e-10)
    assert int(bn.num_batches_tracked.item()) == 3  # evaluation leaves the buffers alone


def test_momentum_none_is_a_cumulative_average():
    bn = nn.BatchNorm1d(2, momentum=None, dtype="float64")
    xs = [rng.standard_normal((6, 2)) for _ in range(3)]
    for x in xs:
        bn(gnn.tensor(x))
    means = np.mean([x.mean(axis=0) for x in xs], axis=0)
    np.testing.assert_allclose(bn.running_mean.numpy(), means, rtol=1e-12)


def test_state_dict_keys_and_no_tracking():
    bn = nn.BatchNorm2d(4)
    assert list(bn.state_dict()) == [
        "weight", "bias", "running_mean", "running_var", "num_batches_tracked",
    ]  # fmt: skip
    assert bn.num_batches_tracked.dtype == np.int64
    plain = nn.BatchNorm1d(3, affine=False, track_running_stats=False)
    assert list(plain.state_dict()) == []
    x = rng.standard_normal((4, 3)).astype(np.float32)
    plain.eval()  # no running stats: batch statistics even in evaluation
    ref, _, _ = ref_bn_train(x.astype(np.float64), np.ones(3), np.zeros(3), 1e-5)
    np.testing.assert_allclose(plain(gnn.tensor(x)).numpy(), ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape", [(4, 3), (3, 3, 4), (2, 3, 3, 2)])
def test_gradcheck_training(shape):
    x = gnn.tensor(rng.standard_normal(shape), requires_grad=True)
    w = gnn.tensor(rng.standard_normal(3), requires_grad=True)
    b = gnn.tensor(rng.standard_normal(3), requires_grad=True)
    assert gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), [x, w, b])
    assert gradcheck(lambda x: F.batch_norm(x, None, None, training=True), [x])


def test_gradcheck_eval_uses_running_stats_as_constants():
    rm, rv = gnn.tensor(rng.standard_normal(3)), gnn.tensor(rng.random(3) + 0.5)
    x = gnn.tensor(rng.standard_normal((4, 3, 2)), requires_grad=True)
    w = gnn.tensor(rng.standard_normal(3), requires_grad=True)
    b = gnn.tensor(rng.standard_normal(3), requires_grad=True)
    assert gradcheck(lambda x, w, b: F.batch_norm(x, rm, rv, w, b, training=False), [x, w, b])


def test_float32_keeps_dtype():
    x = (rng.standard_normal((8, 4, 3, 3)) * 10 + 50).astype(np.float32)
    out = nn.BatchNorm2d(4)(gnn.tensor(x))
    assert out.dtype == np.float32
    ref, _, _ = ref_bn_train(x.astype(np.float64), np.ones(4), np.zeros(4), 1e-5)
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-4)


def test_errors_are_clear():
    with pytest.raises(ValueError, match="expected more than 1 value per channel when training"):
        nn.BatchNorm1d(3)(gnn.randn(1, 3))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm2d(3)(gnn.randn(1, 3, 1, 1))
    bn = nn.BatchNorm1d(3).eval()
    assert bn(gnn.randn(1, 3)).shape == (1, 3)  # a batch of one is fine in evaluation
    with pytest.raises(ValueError, match=r"BatchNorm1d\(3\): expected 3 channels.*\(4, 5\)"):
        nn.BatchNorm1d(3)(gnn.randn(4, 5))
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected 4-D \(N, C, H, W\)"):
        nn.BatchNorm2d(3)(gnn.randn(4, 3))
    with pytest.raises(ValueError, match="num_features must be a positive integer, got 0"):
        nn.BatchNorm2d(0)
    with pytest.raises(ValueError, match="running_mean of shape"):
        F.batch_norm(gnn.randn(4, 3), gnn.zeros(2), gnn.ones(2))
