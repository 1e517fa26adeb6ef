"""Every layer of issue 4 (dense, activations, dropout, flatten, conv, pooling, batch norm,
recurrent) and small Sequential models against PyTorch's outputs and gradients stored in
tests/golden/layers.npz (written by tests/golden/make_layers.py; PyTorch is not needed here).

Each case builds the gnn layer with the same arguments, loads PyTorch's state dict by key name
(strictly: a missing or extra key fails), runs the stored inputs in the same mode, and compares
outputs, input gradients and parameter gradients.
"""

import json
from pathlib import Path

import numpy as np
import pytest

import gnn
from gnn import nn

GOLDEN = Path(__file__).parent / "golden" / "layers.npz"
TOL = {"float64": {"rtol": 1e-9, "atol": 1e-10}, "float32": {"rtol": 1e-4, "atol": 1e-5}}
# The NumPy backend's erf is a fit with absolute error up to 1.2e-7 (NumPy has no erf), so exact
# GELU (x * Phi(x)) in float64 matches PyTorch to about |x| * 6e-8, not to 1e-9.
ERF_TOL = {"rtol": 1e-6, "atol": 5e-7}


def _load() -> dict[str, dict]:
    """{case: {name: array or text}}, unpacked from one vector + JSON index per case."""
    raw = np.load(GOLDEN)
    cases = {}
    for key in raw.files:
        if not key.endswith("/index"):
            continue
        case = key[: -len("/index")]
        index = json.loads(str(raw[key]))
        data = raw[f"{case}/data"]
        items = {}
        for name, meta in index.items():
            if "text" in meta:
                items[name] = meta["text"]
                continue
            n = int(np.prod(meta["shape"]))
            chunk = data[meta["at"] : meta["at"] + n]
            items[name] = chunk.astype(meta["dtype"]).reshape(meta["shape"])
        cases[case] = items
    return cases


CASES = _load()


def _build(cls: str, kwargs: dict, dtype: str) -> nn.Module:
    """The gnn layer; layers with parameters get the dtype argument, the rest the default dtype."""
    if cls == "Sequential":
        with gnn.default_dtype(dtype):
            return nn.Sequential(*[getattr(nn, c)(**kw) for c, kw in kwargs["layers"]])
    layer_cls = getattr(nn, cls)
    if cls in NO_PARAMETERS:
        return layer_cls(**kwargs)
    return layer_cls(**kwargs, dtype=dtype)


NO_PARAMETERS = {
    "MaxPool2d", "AvgPool2d", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "Softmax",
    "Flatten", "Identity", "Dropout",
}  # fmt: skip


def _sub(items: dict, prefix: str) -> dict:
    return {k[len(prefix) :]: v for k, v in items.items() if k.startswith(prefix)}


@pytest.mark.parametrize("case", sorted(CASES))
def test_layer_matches_pytorch(case):
    items = CASES[case]
    config = json.loads(items["config"])
    tol = TOL[config["dtype"]]
    if config["cls"] == "GELU" and config["kwargs"].get("approximate", "none") == "none":
        tol = {k: max(v, ERF_TOL[k]) for k, v in tol.items()}
    layer = _build(config["cls"], config["kwargs"], config["dtype"])
    if "keys" in config:  # PyTorch's key names, in PyTorch's order
        assert list(layer.state_dict()) == config["keys"]
    layer.load_state_dict(_sub(items, "state/"))
    layer.train(config.get("mode", "train") == "train")
    inputs = {k: gnn.tensor(v, requires_grad=True) for k, v in _sub(items, "in/").items()}
    call = config["call"]
    if call == "x":
        outs = [layer(inputs["x"])]
    elif call == "x,h":
        out, h = layer(inputs["x"], inputs.get("h0"))
        outs = [out, h]
    else:
        hx = (inputs["h0"], inputs["c0"]) if "h0" in inputs else None
        out, (h, c) = layer(inputs["x"], hx)
        outs = [out, h, c]
    loss = None
    for i, o in enumerate(outs):
        assert o.dtype == np.dtype(config["dtype"])
        np.testing.assert_allclose(o.numpy(), items[f"out{i}"], **tol, err_msg=f"output {i}")
        term = (o * gnn.tensor(items[f"gy{i}"])).sum()
        loss = term if loss is None else loss + term
    loss.backward()
    for k, g in _sub(items, "grad_in/").items():
        np.testing.assert_allclose(inputs[k].grad.numpy(), g, **tol, err_msg=f"grad of {k}")
    params = dict(layer.named_parameters())
    grads = _sub(items, "grad/")
    assert sorted(grads) == sorted(params)
    for k, g in grads.items():
        np.testing.assert_allclose(params[k].grad.numpy(), g, **tol, err_msg=f"grad of {k}")
    if config["cls"].startswith("BatchNorm"):
        state = layer.state_dict()
        for k, v in _sub(items, "state_after/").items():
            np.testing.assert_allclose(state[k].numpy(), v, **tol, err_msg=f"{k} after a step")
        layer.eval()
        out = layer(gnn.tensor(items["eval_in"]))
        np.testing.assert_allclose(out.numpy(), items["eval_out"], **tol, err_msg="eval output")


def test_every_layer_kind_has_goldens():
    configs = [json.loads(c["config"]) for c in CASES.values()]
    kinds = {c["cls"] for c in configs}
    for cfg in configs:
        if cfg["cls"] == "Sequential":
            kinds |= {c for c, _ in cfg["kwargs"]["layers"]}
    # LayerNorm and Embedding also have their own cases in tests/golden/transformer.npz.
    assert kinds >= {
        "Linear", "Identity", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "Softmax", "Dropout",
        "LayerNorm", "BatchNorm1d", "BatchNorm2d", "Conv2d", "ConvTranspose2d", "MaxPool2d",
        "AvgPool2d", "Flatten", "RNN", "LSTM", "GRU",
    }  # fmt: skip
    # The options issue 4 names, each exercised by at least one case.
    used = {(c["cls"], k) for c in configs for k in c["kwargs"]}
    assert used >= {
        ("Linear", "bias"), ("Conv2d", "stride"), ("Conv2d", "padding"), ("Conv2d", "dilation"),
        ("Conv2d", "groups"), ("Conv2d", "bias"), ("ConvTranspose2d", "stride"),
        ("ConvTranspose2d", "padding"), ("ConvTranspose2d", "output_padding"),
        ("RNN", "nonlinearity"), ("RNN", "num_layers"), ("RNN", "bidirectional"),
        ("RNN", "batch_first"), ("LSTM", "num_layers"), ("LSTM", "bidirectional"),
        ("LSTM", "batch_first"), ("LSTM", "dropout"), ("GRU", "num_layers"),
        ("GRU", "bidirectional"), ("GRU", "batch_first"),
    }  # fmt: skip
    with_state = {json.loads(c["config"])["cls"] for c in CASES.values() if "in/h0" in c}
    assert with_state >= {"RNN", "LSTM", "GRU"}  # initial states given
    assert any(c["mode"] == "eval" for c in configs if c["cls"] == "Dropout")
