"""The brain.js face: gnn.NeuralNetwork against a hand-written NumPy version of brain.js's rules."""

import json

import numpy as np
import pytest

import gnn
from gnn.simple import NeuralNetwork

XOR = [
    {"input": [0, 0], "output": [0]},
    {"input": [0, 1], "output": [1]},
    {"input": [1, 0], "output": [1]},
    {"input": [1, 1], "output": [0]},
]


def brainjs_reference(json_net, data, iterations, lr=0.3, momentum=0.1, act="sigmoid"):
    """brain.js's NeuralNetwork training written out node by node in NumPy (float64).

    Online updates in data order; output error = target - output; deltas through the activation
    derivative expressed in the output; change = lr * delta * input + momentum * change on the
    weights; bias += lr * delta. Returns (weights, biases, error of the last pass).
    """
    W = [np.array(layer["weights"], dtype=np.float64) for layer in json_net["layers"]]
    B = [np.array(layer["biases"], dtype=np.float64) for layer in json_net["layers"]]
    changes = [np.zeros_like(w) for w in W]
    f = {"sigmoid": lambda s: 1 / (1 + np.exp(-s)), "tanh": np.tanh}[act]
    df = {"sigmoid": lambda o: o * (1 - o), "tanh": lambda o: 1 - o * o}[act]
    error = None
    for _ in range(iterations):
        total = 0.0
        for d in data:
            outs = [np.array(d["input"], dtype=np.float64)]
            for w, b in zip(W, B):
                outs.append(f(w @ outs[-1] + b))
            target = np.array(d["output"], dtype=np.float64)
            err = target - outs[-1]
            total += np.mean(err**2)
            deltas = [None] * len(W)
            deltas[-1] = err * df(outs[-1])
            for layer in range(len(W) - 2, -1, -1):
                deltas[layer] = (W[layer + 1].T @ deltas[layer + 1]) * df(outs[layer + 1])
            for layer in range(len(W)):
                changes[layer] = (
                    lr * np.outer(deltas[layer], outs[layer]) + momentum * changes[layer]
                )
                W[layer] += changes[layer]
                B[layer] += lr * deltas[layer]
        error = total / len(data)
    return W, B, error


@pytest.mark.parametrize("act", ["sigmoid", "tanh"])
def test_updates_match_brainjs_rules(act):
    gnn.manual_seed(3)
    data = [
        {"input": [0.1, 0.9, 0.3, 0.5], "output": [0.8]},
        {"input": [1, 0, 0.2, 0.7], "output": [0.1]},
        {"input": [0.4, 0.4, 0.9, 0.0], "output": [0.5]},
    ]
    net = NeuralNetwork(hidden_layers=[3], activation=act)
    net.train(data, iterations=1, error_thresh=1e-9)  # builds the 4-3-1 net
    start = net.to_json()
    net64 = NeuralNetwork.from_json(start)
    net64.model.double()
    result = net64.train(data, iterations=5, error_thresh=1e-9)
    W, B, err = brainjs_reference(start, data, 5, act=act)
    got = net64.to_json()["layers"]
    for layer, w, b in zip(got, W, B):
        np.testing.assert_allclose(layer["weights"], w, rtol=1e-10)
        np.testing.assert_allclose(layer["biases"], b, rtol=1e-10)
    assert result["iterations"] == 5
    assert result["error"] == pytest.approx(err, rel=1e-10)


def test_xor_learns_and_stops_at_error_thresh():
    gnn.manual_seed(1)
    net = gnn.NeuralNetwork()
    result = net.train(XOR)
    assert set(result) == {"error", "iterations"}
    assert result["error"] <= 0.005 and result["iterations"] < 20000
    for d in XOR:
        out = net.run(d["input"])
        assert isinstance(out, list) and len(out) == 1
        assert round(out[0]) == d["output"][0]
    assert net.sizes == [2, 3, 1]


def test_iterations_cap_and_logging(capsys):
    gnn.manual_seed(1)
    net = NeuralNetwork()
    seen = []
    result = net.train(
        XOR, iterations=30, log=lambda s: seen.append(s["iterations"]), log_period=10
    )
    assert result["iterations"] == 30 and seen == [10, 20, 30]
    net.train(XOR, iterations=20, log=True, log_period=10)
    assert capsys.readouterr().out.count("training error") == 2


def test_dict_inputs_and_outputs():
    data = [
        {"input": {"r": 0.03, "g": 0.7, "b": 0.5}, "output": {"black": 1}},
        {"input": {"r": 0.16, "g": 0.09, "b": 0.2}, "output": {"white": 1}},
        {"input": {"r": 0.5, "g": 0.5, "b": 1.0}, "output": {"white": 1}},
        {"input": {"r": 0.9, "g": 0.9}, "output": {"black": 1}},  # missing "b" counts as 0
    ]
    gnn.manual_seed(0)
    net = NeuralNetwork()
    net.train(data, iterations=3000)
    out = net.run({"r": 1, "g": 0.4, "b": 0})
    assert set(out) == {"black", "white"}
    assert net.input_lookup == {"r": 0, "g": 1, "b": 2}
    with pytest.raises(ValueError, match="trained on dicts"):
        net.run([1, 0.4, 0])


def test_json_round_trip():
    gnn.manual_seed(2)
    net = NeuralNetwork(hidden_layers=[4, 2])
    net.train(XOR, iterations=50)
    text = json.dumps(net.to_json())
    back = NeuralNetwork.from_json(text)
    assert back.sizes == [2, 4, 2, 1]
    for d in XOR:
        assert back.run(d["input"]) == pytest.approx(net.run(d["input"]))


def test_default_hidden_layer_and_errors():
    net = NeuralNetwork(hidden_layers=None)
    net.train([{"input": [0] * 10, "output": [1]}], iterations=1)
    assert net.sizes == [10, 5, 1]  # max(3, inputs // 2)
    with pytest.raises(ValueError, match="unknown activation 'softplus'"):
        NeuralNetwork(activation="softplus")
    with pytest.raises(RuntimeError, match="not trained"):
        NeuralNetwork().run([0, 1])
    with pytest.raises(ValueError, match="expected 10 inputs, got 2"):
        net.run([0, 1])
    with pytest.raises(ValueError, match="'input' and 'output'"):
        NeuralNetwork().train([{"in": [1], "out": [0]}])
    with pytest.raises(ValueError, match="same length"):
        NeuralNetwork().train([{"input": [1, 2], "output": [0]}, {"input": [1], "output": [0]}])


def test_test_before_train_says_not_trained():
    # test() on an untrained network raised AttributeError ('NoneType' ... 'parameters'); it now
    # says what run() says (found by mypy: NeuralNetwork.model is None until train/from_json).
    with pytest.raises(RuntimeError, match=r"NeuralNetwork\.test: the network is not trained"):
        NeuralNetwork().test(XOR)


def test_non_finite_training_data_names_the_sample():
    data = [{"input": [0, 1], "output": [1]}, {"input": [float("nan"), 1], "output": [0]}]
    with pytest.raises(ValueError, match=r"the input of sample 1 is not finite"):
        NeuralNetwork().train(data, iterations=1)
    data = [{"input": [0, 1], "output": [float("inf")]}]
    with pytest.raises(ValueError, match=r"the output of sample 0 is not finite"):
        NeuralNetwork().train(data, iterations=1)


def test_json_round_trip_with_named_inputs_and_outputs():
    data = [
        {"input": {"r": 1.0, "g": 0.2}, "output": {"warm": 1.0}},
        {"input": {"b": 1.0, "g": 0.5}, "output": {"cold": 1.0}},
    ]
    gnn.manual_seed(0)
    net = NeuralNetwork()
    net.train(data, iterations=200)
    back = NeuralNetwork.from_json(json.dumps(net.to_json()))
    assert back.input_lookup == {"r": 0, "g": 1, "b": 2}
    assert back.run({"b": 0.9}) == pytest.approx(net.run({"b": 0.9}))
    assert set(back.run({"r": 1.0})) == {"warm", "cold"}
