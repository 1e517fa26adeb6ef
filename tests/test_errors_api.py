"""Issue 17: every bad input a user can make through the Python API gets a clear error."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

import gnn
from gnn import nn, optim
from gnn.simple import NeuralNetwork

# ---- optimizers -------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [optim.SGD, optim.Adam, optim.AdamW, optim.RMSprop])
@pytest.mark.parametrize("lr", [math.inf, math.nan, 0.0, -1.0])
def test_optimizers_refuse_non_finite_or_non_positive_lr(cls, lr):
    with pytest.raises(ValueError, match=r"lr must be in \(0, inf\)"):
        cls(nn.Linear(2, 1).parameters(), lr=lr)


def test_optimizer_refuses_infinite_weight_decay():
    with pytest.raises(ValueError, match="weight_decay"):
        optim.SGD(nn.Linear(2, 1).parameters(), lr=0.1, weight_decay=math.inf)


# ---- NeuralNetwork (brain.js face) -------------------------------------------------------------


def test_neural_network_hidden_layers_int_is_a_clear_error():
    with pytest.raises(TypeError, match=r"hidden_layers must be a list.*pass \[3\]"):
        NeuralNetwork(hidden_layers=3)


def test_neural_network_train_refuses_nan_error_thresh():
    net = NeuralNetwork()
    with pytest.raises(ValueError, match="error_thresh"):
        net.train([{"input": [0, 1], "output": [1]}], error_thresh=math.nan, iterations=2)


def test_neural_network_train_divergence_is_an_error_not_converged():
    # 1e39 is finite as float64 but inf in float32: the error turns NaN on the first pass
    net = NeuralNetwork(activation="relu", learning_rate=100)
    with pytest.raises(FloatingPointError, match="diverged at iteration"):
        net.train([{"input": [1e39, 1.0], "output": [1]}], iterations=50)


@pytest.mark.parametrize(
    "data, match",
    [
        ({"layers": []}, "missing 'sizes'"),
        ({"sizes": [2, 1]}, "missing 'layers'"),
        ({"sizes": [2, 1], "layers": [{"weights": [[0.0, 0.0]]}]}, "missing 'biases'"),
        ({"sizes": [2, 1], "layers": [{"biases": [0.0]}]}, "missing 'weights'"),
        ({"sizes": [2, 1], "layers": [None]}, "missing 'weights' and 'biases'"),
        ({"sizes": "2,1", "layers": []}, "'sizes' must be a list"),
        ({"sizes": [2, 1], "layers": [{"weights": [["a", "b"]], "biases": [0.0]}]}, "numbers"),
        ("{not json", "not valid JSON"),
        ([1, 2], "expected to_json"),
    ],
)
def test_neural_network_from_json_with_missing_fields(data, match):
    with pytest.raises(ValueError, match=match):
        NeuralNetwork.from_json(data)


def test_neural_network_from_json_round_trip_still_works():
    net = NeuralNetwork(hidden_layers=[3])
    net.train([{"input": [0, 1], "output": [1]}, {"input": [1, 1], "output": [0]}], iterations=3)
    again = NeuralNetwork.from_json(net.to_json())
    assert again.run([0, 1]) == pytest.approx(net.run([0, 1]))


# ---- load_state_dict ---------------------------------------------------------------------------


def test_load_state_dict_path_string_says_use_gnn_load():
    with pytest.raises(TypeError, match=r"pass a dict; use gnn.load"):
        nn.Linear(2, 3).load_state_dict("weights.safetensors")


def _snapshot(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


@pytest.mark.parametrize(
    "bad",
    [
        {"0.weight": np.array([["a", "b"]] * 3)},  # strings
        {"0.weight": np.array([[object()] * 2] * 3)},  # objects
        {"0.weight": np.ones((3, 2), np.complex64)},  # complex
        {"2.weight": np.ones((5, 5), np.float32)},  # a later key of the wrong shape
    ],
)
def test_load_state_dict_is_all_or_nothing(bad):
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    before = _snapshot(model)
    sd = {k: np.full(v.shape, 7.0, np.float32) for k, v in before.items()}
    sd.update(bad)
    with pytest.raises(RuntimeError, match="error\\(s\\) loading state_dict") as info:
        model.load_state_dict(sd)
    assert next(iter(bad)) in str(info.value)
    after = _snapshot(model)
    for k in before:  # the good keys (0.bias, 2.bias, ...) were not copied either
        np.testing.assert_array_equal(after[k], before[k])


def test_load_state_dict_numeric_dtypes_still_load():
    model = nn.Linear(2, 3)
    model.load_state_dict({"weight": np.ones((3, 2), np.int64), "bias": [True, False, True]})
    np.testing.assert_array_equal(model.weight.numpy(), np.ones((3, 2)))
    np.testing.assert_array_equal(model.bias.numpy(), [1, 0, 1])


# ---- Keras face: fit / evaluate / predict ------------------------------------------------------


def _keras_model(metrics=("accuracy",)):
    from gnn.layers import Dense

    model = gnn.Sequential(Dense(4, activation="relu"), Dense(1, activation="sigmoid"))
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=list(metrics))
    return model


def _xy(n=20):
    rng = np.random.default_rng(0)
    x = rng.random((n, 3)).astype(np.float32)
    return x, (x[:, :1] > 0.5).astype(np.float32)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, "8", True, None])
def test_evaluate_and_predict_validate_batch_size_like_fit(batch_size):
    model, (x, y) = _keras_model(), _xy()
    for call, who in (
        (lambda: model.fit(x, y, batch_size=batch_size, verbose=0), "fit"),
        (lambda: model.evaluate(x, y, batch_size=batch_size), "evaluate"),
        (lambda: model.predict(x, batch_size=batch_size), "predict"),
    ):
        with pytest.raises(ValueError, match=f"{who}: batch_size must be a positive integer"):
            call()


def test_fit_evaluate_predict_accept_numpy_integers():
    model, (x, y) = _keras_model(), _xy()
    history = model.fit(x, y, epochs=np.int64(2), batch_size=np.int32(8), verbose=0)
    assert len(history.history["loss"]) == 2
    assert set(model.evaluate(x, y, batch_size=np.int64(5))) == {"loss", "accuracy"}
    assert model.predict(x, batch_size=np.uint8(7)).shape == (20, 1)


@pytest.mark.parametrize("epochs", [-1, 1.0, "3", np.float64(2.0), True])
def test_fit_still_refuses_non_integer_epochs(epochs):
    model, (x, y) = _keras_model(), _xy()
    with pytest.raises(ValueError, match="fit: epochs must be a non-negative integer"):
        model.fit(x, y, epochs=epochs, verbose=0)


def test_model_checkpoint_val_loss_pattern_without_validation_fails_at_start(tmp_path):
    from gnn.train.callbacks import ModelCheckpoint

    model, (x, y) = _keras_model(), _xy()
    before = model.fit(x, y, epochs=0, verbose=0)  # builds the model, trains nothing
    assert before.history == {}
    w = [p.numpy().copy() for p in model.parameters()]
    ckpt = ModelCheckpoint(str(tmp_path / "ckpt-{epoch}-{val_loss:.3f}.safetensors"))
    with pytest.raises(ValueError, match=r"uses \{val_loss\}.*validation_data"):
        model.fit(x, y, epochs=3, verbose=0, callbacks=[ckpt])
    for a, p in zip(w, model.parameters()):  # failed before the first update
        np.testing.assert_array_equal(a, p.numpy())
    # with validation data the same pattern works
    model.fit(x, y, epochs=1, verbose=0, validation_split=0.25, callbacks=[ckpt])
    assert len(ckpt.saved) == 1 and os.path.exists(ckpt.saved[0])


def test_nan_stopped_history_keeps_every_metric_key(capsys):
    model, (x, y) = _keras_model(metrics=("accuracy", "mae")), _xy()
    model.fit(x, y, epochs=0, verbose=0)
    with gnn.no_grad():
        next(iter(model.parameters())).fill_(float("nan"))
    history = model.fit(x, y, epochs=3, verbose=0, validation_split=0.25)
    assert "stopped at epoch 1" in capsys.readouterr().err
    keys = {"loss", "accuracy", "mae", "val_loss", "val_accuracy", "val_mae"}
    assert set(history.history) == keys
    assert all(len(v) == 1 for v in history.history.values())
    assert math.isnan(history.history["loss"][0])
