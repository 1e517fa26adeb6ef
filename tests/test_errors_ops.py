"""Issue 17: bad inputs to layers, losses and gnn.tensor give clear errors, never wrong numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

import gnn
import gnn.functional as F
from gnn import nn

# ---- arrays and lists handed to layers and losses ----------------------------------------------


@pytest.mark.parametrize(
    "layer",
    [
        lambda: nn.Linear(2, 3),
        lambda: nn.Sequential(nn.Linear(2, 3), nn.ReLU()),
        lambda: nn.ReLU(),
        lambda: nn.LayerNorm(2),
        lambda: nn.BatchNorm1d(2),
        lambda: nn.Dropout(0.5),
    ],
)
@pytest.mark.parametrize("make", [np.zeros, lambda s: np.zeros(s).tolist()], ids=["numpy", "list"])
def test_layers_given_arrays_or_lists_say_what_to_do(layer, make):
    with pytest.raises(TypeError, match=r"not a gnn Tensor; convert it first with gnn.tensor"):
        layer()(make((4, 2)))


def test_layers_still_take_tensors_and_user_modules_anything():
    assert nn.Linear(2, 3)(gnn.zeros(4, 2)).shape == (4, 3)

    class Mine(nn.Module):
        def forward(self, x):
            return np.asarray(x).sum()

    assert Mine()(np.ones(3)) == 3.0  # a user's Module decides for itself


@pytest.mark.parametrize(
    "loss",
    [F.mse_loss, F.l1_loss, F.binary_cross_entropy, F.binary_cross_entropy_with_logits],
)
def test_losses_given_an_array_input_say_what_to_do(loss):
    with pytest.raises(TypeError, match=r"input must be a gnn Tensor.*gnn.tensor"):
        loss(np.full((3,), 0.5, np.float32), gnn.zeros(3))


def test_cross_entropy_and_nll_given_an_array_input():
    for loss in (F.cross_entropy, F.nll_loss):
        with pytest.raises(TypeError, match="input must be a gnn Tensor"):
            loss(np.zeros((2, 3), np.float32), gnn.tensor([0, 1]))


def test_loss_targets_as_arrays_are_still_converted():
    # the documented choice: targets may be arrays or lists; the prediction must be a Tensor
    x = gnn.tensor([[1.0, 2.0, 0.5]])
    assert F.cross_entropy(x, np.array([1])).item() == pytest.approx(
        F.cross_entropy(x, gnn.tensor([1])).item()
    )
    assert F.mse_loss(gnn.ones(2), [1.0, 1.0]).item() == 0.0


# ---- labels ------------------------------------------------------------------------------------


def test_float_labels_to_nll_loss_are_a_clear_error():
    with pytest.raises(TypeError, match=r"nll_loss: target must hold integer class labels.*long"):
        F.nll_loss(F.log_softmax(gnn.zeros(2, 3), 1), gnn.tensor([0.0, 1.0]))


def test_float_labels_to_cross_entropy_are_a_clear_error():
    with pytest.raises(ValueError, match=r"class labels must be integers \(convert them with"):
        F.cross_entropy(gnn.zeros(2, 3), gnn.tensor([0.0, 1.0]))
    # probabilities of the input's shape still work
    probs = gnn.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assert F.cross_entropy(gnn.zeros(2, 3), probs).item() == pytest.approx(math.log(3))


@pytest.mark.parametrize("loss", [F.cross_entropy, F.nll_loss])
def test_integer_logits_are_refused(loss):
    with pytest.raises(TypeError, match=r"must be floating point, got int64.*\.float\(\)"):
        loss(gnn.tensor([[1, 2, 3]]), gnn.tensor([0]))


@pytest.mark.parametrize("loss", [F.cross_entropy, F.nll_loss])
def test_class_weight_of_the_wrong_shape_is_refused(loss):
    with pytest.raises(ValueError, match=r"weight must have shape \(3,\), got \(2,\)"):
        loss(gnn.zeros(2, 3), gnn.tensor([0, 1]), weight=gnn.ones(2))


def test_class_weight_of_the_wrong_shape_with_probabilities():
    with pytest.raises(ValueError, match=r"weight must have shape \(3,\), got \(4,\)"):
        F.cross_entropy(gnn.zeros(2, 3), gnn.full((2, 3), 1 / 3), weight=gnn.ones(4))


# ---- no silent wrong numbers -------------------------------------------------------------------


@pytest.mark.parametrize("bad", [1.5, -0.2, 2.0, -1e-3])
def test_binary_cross_entropy_outside_0_1_raises(bad):
    x = gnn.tensor([0.3, bad, 0.9])
    with pytest.raises(ValueError, match=r"binary_cross_entropy: input must hold probabilities"):
        F.binary_cross_entropy(x, gnn.tensor([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="probabilities"):
        nn.BCELoss()(x, gnn.tensor([1.0, 0.0, 1.0]))


def test_binary_cross_entropy_in_range_is_unchanged():
    x, t = gnn.tensor([0.0, 0.25, 1.0]), gnn.tensor([0.0, 1.0, 1.0])
    assert F.binary_cross_entropy(x, t).item() == pytest.approx(-math.log(0.25) / 3, rel=1e-6)
    # NaN passes through (fit stops on NaN losses with its own message)
    assert math.isnan(F.binary_cross_entropy(gnn.tensor([math.nan]), gnn.tensor([1.0])).item())


@pytest.mark.parametrize("layer", [nn.BatchNorm1d(3), nn.BatchNorm1d(3).eval()])
def test_batchnorm_on_integer_input_raises(layer):
    with pytest.raises(TypeError, match=r"BatchNorm1d: expected a floating-point input, got int64"):
        layer(gnn.tensor([[1, 2, 3], [4, 5, 6]]))


@pytest.mark.parametrize(
    "data, match",
    [
        (None, "from NoneType"),
        ([1.0, None], "holds None"),
        ([[1, 2], [3, None]], "holds None"),
        (np.array([object()]), "dtype object"),
        (np.array([1, 2], dtype=object), "dtype object"),
        ([1 + 2j], "complex128"),
        (np.ones(2, np.complex64), "complex64"),
        (np.array(["a"]), "<U1"),
        ({"a": 1}, "from dict"),
        ({1, 2}, "from set"),
    ],
)
def test_tensor_refuses_none_object_and_complex_data(data, match):
    with pytest.raises(TypeError, match=match):
        gnn.tensor(data)


def test_tensor_still_takes_numbers_lists_of_tensors_and_explicit_object_casts():
    assert gnn.tensor([gnn.tensor(1.0), gnn.tensor(2.0)]).tolist() == [1.0, 2.0]
    assert gnn.tensor(np.array([1, 2], dtype=object), dtype="float32").tolist() == [1.0, 2.0]
    assert gnn.tensor(np.float16(1)).dtype == np.float16
    with pytest.raises(TypeError, match="holds None"):
        gnn.tensor(np.array([1, None], dtype=object), dtype="float32")


# ---- ignored rows contribute exactly nothing ---------------------------------------------------


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy notes the inf - inf it computes
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
def test_ignored_row_with_non_finite_logit_adds_nothing(
    device, bad, reduction, smoothing, weighted
):
    rows = np.array([[bad, 0.0, 0.0], [1.0, 2.0, 3.0], [0.5, -1.0, 2.0]], np.float32)
    labels = np.array([-100, 1, 2])
    w = gnn.tensor([1.0, 2.0, 0.5], device=device) if weighted else None
    x = gnn.tensor(rows, device=device, requires_grad=True)
    loss = F.cross_entropy(
        x, gnn.tensor(labels, device=device), weight=w, reduction=reduction,
        label_smoothing=smoothing,
    )  # fmt: skip
    loss.sum().backward()
    # the same loss without the ignored row
    ref_x = gnn.tensor(rows[1:], device=device, requires_grad=True)
    ref = F.cross_entropy(
        ref_x, gnn.tensor(labels[1:], device=device), weight=w, reduction=reduction,
        label_smoothing=smoothing,
    )  # fmt: skip
    ref.sum().backward()
    got = loss.numpy()
    if reduction == "none":
        assert got[0] == 0.0
        got = got[1:]
    np.testing.assert_allclose(got, ref.numpy(), rtol=1e-6, atol=1e-7)
    g = x.grad.numpy()
    assert np.all(g[0] == 0.0)
    np.testing.assert_allclose(g[1:], ref_x.grad.numpy(), rtol=1e-6, atol=1e-7)


# ---- devices -----------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize(
    "call",
    [
        lambda x, t: F.cross_entropy(x, t),
        lambda x, t: F.nll_loss(F.log_softmax(x, 1), t),
        lambda x, t: F.cross_entropy(x, t.to("cuda"), weight=gnn.ones(3)),
        lambda x, t: nn.CrossEntropyLoss()(x, t),
    ],
)
def test_cpu_labels_with_gpu_logits_are_the_different_devices_error(call):
    if not gnn.cuda_available():
        pytest.skip("needs CuPy and a CUDA device")
    x = gnn.zeros(2, 3, device="cuda")
    t = gnn.tensor([0, 1])
    with pytest.raises(RuntimeError, match=r"inputs are on different devices \(cuda:0 and cpu"):
        call(x, t)


@pytest.mark.gpu
def test_binary_cross_entropy_on_gpu_adds_no_host_read():
    if not gnn.cuda_available():
        pytest.skip("needs CuPy and a CUDA device")
    import cupy

    if not hasattr(cupy, "host_reads"):
        pytest.skip("host reads are counted by the fake CuPy only")
    x = gnn.tensor([0.2, 0.7], device="cuda", requires_grad=True)
    t = gnn.tensor([0.0, 1.0], device="cuda")
    F.binary_cross_entropy(x, t).backward()  # warm up caches
    reads = cupy.host_reads
    F.binary_cross_entropy(x, t).backward()
    assert cupy.host_reads == reads
