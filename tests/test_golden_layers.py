"""Conv, pooling, batch norm and recurrent layers against PyTorch's outputs and gradients stored in
tests/golden/layers.npz (written by tests/golden/make_layers.py; PyTorch is not needed here).

Each case builds the gnn layer with the same arguments, loads PyTorch's state dict by key name,
runs the stored inputs, and compares outputs, input gradients and parameter gradients.
"""

import json
from pathlib import Path

import numpy as np
import pytest

import gnn
from gnn import nn

GOLDEN = Path(__file__).parent / "golden" / "layers.npz"
TOL = {"float64": {"rtol": 1e-9, "atol": 1e-10}, "float32": {"rtol": 1e-4, "atol": 1e-5}}


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


def _sub(items: dict, prefix: str) -> dict:
    return {k[len(prefix) :]: v for k, v in items.items() if k.startswith(prefix)}


@pytest.mark.parametrize("case", sorted(CASES))
def test_layer_matches_pytorch(case):
    items = CASES[case]
    config = json.loads(items["config"])
    tol = TOL[config["dtype"]]
    kwargs = dict(config["kwargs"])
    if "Pool" not in config["cls"]:  # pooling layers have no parameters, hence no dtype
        kwargs["dtype"] = config["dtype"]
    layer = getattr(nn, config["cls"])(**kwargs)
    layer.load_state_dict(_sub(items, "state/"))
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
    kinds = {json.loads(c["config"])["cls"] for c in CASES.values()}
    assert kinds >= {
        "Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "BatchNorm1d", "BatchNorm2d",
        "RNN", "LSTM", "GRU",
    }  # fmt: skip
