"""Write tests/golden/layers.npz: PyTorch outputs and gradients for conv, pooling, batch norm and
recurrent layers.

Run with PyTorch installed (never needed by the test suite): python tests/golden/make_layers.py
Each case stores a JSON config (layer class and arguments), its inputs, the module's state dict
(PyTorch key names) before the step, the outputs, one fixed random gradient per output, and the
gradients of the inputs and parameters for sum(output_i * gy_i); pack() puts each case in one
float64 vector plus a JSON index. BatchNorm cases also store the state after the training step
and an output in evaluation mode. Most cases are float64; a few float32 cases check gnn's float32
path against PyTorch's.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

OUT = Path(__file__).with_name("layers.npz")
rng = np.random.default_rng(0)
store: dict[str, np.ndarray] = {}


def arr(*shape: int, dtype: str) -> np.ndarray:
    return rng.standard_normal(shape).astype(dtype)


def run_case(name: str, cls: str, kwargs: dict, inputs: dict, dtype: str, call: str = "x") -> None:
    """Build the layer, run forward (call: how inputs are passed), backward, store everything."""
    torch.manual_seed(len(store))
    module = getattr(nn, cls)(**kwargs).to(getattr(torch, dtype))
    if cls.startswith("BatchNorm") and kwargs.get("affine", True):
        with torch.no_grad():  # non-trivial affine parameters
            module.weight.uniform_(0.5, 1.5)
            module.bias.uniform_(-0.5, 0.5)
    config = {"cls": cls, "kwargs": kwargs, "dtype": dtype, "call": call}
    store[f"{name}/config"] = np.array(json.dumps(config))
    for k, v in module.state_dict().items():
        store[f"{name}/state/{k}"] = v.numpy().copy()
    tins = {k: torch.tensor(v, requires_grad=True) for k, v in inputs.items()}
    for k, v in inputs.items():
        store[f"{name}/in/{k}"] = v
    if call == "x":
        outs = [module(tins["x"])]
    elif call == "x,h":
        out, h = module(tins["x"], tins.get("h0"))
        outs = [out, h]
    else:  # "x,(h,c)"
        hx = (tins["h0"], tins["c0"]) if "h0" in tins else None
        out, (h, c) = module(tins["x"], hx)
        outs = [out, h, c]
    loss = 0
    for i, o in enumerate(outs):
        gy = rng.standard_normal(o.shape).astype(dtype)
        store[f"{name}/out{i}"] = o.detach().numpy()
        store[f"{name}/gy{i}"] = gy
        loss = loss + (o * torch.tensor(gy)).sum()
    loss.backward()
    for k, v in tins.items():
        store[f"{name}/grad_in/{k}"] = v.grad.numpy()
    for k, p in module.named_parameters():
        store[f"{name}/grad/{k}"] = p.grad.numpy()
    if cls.startswith("BatchNorm"):
        for k, v in module.state_dict().items():
            store[f"{name}/state_after/{k}"] = v.numpy().copy()
        module.eval()
        xe = arr(*inputs["x"].shape, dtype=dtype)
        store[f"{name}/eval_in"] = xe
        store[f"{name}/eval_out"] = module(torch.tensor(xe)).detach().numpy()


def conv_cases() -> None:
    f64 = "float64"
    run_case("conv_basic", "Conv2d", {"in_channels": 3, "out_channels": 4, "kernel_size": 3,
             "padding": 1}, {"x": arr(2, 3, 5, 5, dtype=f64)}, f64)  # fmt: skip
    run_case("conv_stride_dil_groups", "Conv2d", {"in_channels": 4, "out_channels": 6,
             "kernel_size": [3, 2], "stride": [2, 1], "padding": [1, 2], "dilation": [2, 1],
             "groups": 2}, {"x": arr(2, 4, 6, 5, dtype=f64)}, f64)  # fmt: skip
    run_case("conv_same_nobias", "Conv2d", {"in_channels": 2, "out_channels": 3,
             "kernel_size": 4, "padding": "same", "bias": False},
             {"x": arr(2, 2, 5, 6, dtype=f64)}, f64)  # fmt: skip
    run_case("conv_f32", "Conv2d", {"in_channels": 8, "out_channels": 4, "kernel_size": 3,
             "padding": 1}, {"x": arr(2, 8, 4, 4, dtype="float32")}, "float32")  # fmt: skip
    run_case("convT_stride", "ConvTranspose2d", {"in_channels": 3, "out_channels": 2,
             "kernel_size": 3, "stride": 2, "padding": 1, "output_padding": 1},
             {"x": arr(2, 3, 4, 4, dtype=f64)}, f64)  # fmt: skip
    run_case("convT_groups_dil", "ConvTranspose2d", {"in_channels": 4, "out_channels": 6,
             "kernel_size": [2, 3], "stride": [1, 2], "padding": [0, 1], "groups": 2,
             "dilation": [2, 1]}, {"x": arr(2, 4, 3, 3, dtype=f64)}, f64)  # fmt: skip
    run_case("convT_f32", "ConvTranspose2d", {"in_channels": 8, "out_channels": 4,
             "kernel_size": 2, "stride": 2}, {"x": arr(2, 8, 3, 3, dtype="float32")},
             "float32")  # fmt: skip


def pool_cases() -> None:
    f64 = "float64"
    run_case("maxpool_2", "MaxPool2d", {"kernel_size": 2}, {"x": arr(2, 3, 6, 7, dtype=f64)}, f64)
    run_case("maxpool_pad_dil_ceil", "MaxPool2d", {"kernel_size": 3, "stride": 2, "padding": 1,
             "dilation": [1, 2], "ceil_mode": True}, {"x": arr(2, 2, 7, 9, dtype=f64)},
             f64)  # fmt: skip
    run_case("avgpool_pad", "AvgPool2d", {"kernel_size": 3, "stride": 2, "padding": 1},
             {"x": arr(2, 3, 7, 6, dtype=f64)}, f64)  # fmt: skip
    run_case("avgpool_nopadcount_ceil", "AvgPool2d", {"kernel_size": [2, 3], "stride": 2,
             "padding": 1, "ceil_mode": True, "count_include_pad": False},
             {"x": arr(2, 2, 6, 7, dtype=f64)}, f64)  # fmt: skip


def bn_cases() -> None:
    f64 = "float64"
    run_case(
        "bn1d_2d", "BatchNorm1d", {"num_features": 4}, {"x": arr(6, 4, dtype=f64) * 2 + 1}, f64
    )
    run_case("bn1d_3d", "BatchNorm1d", {"num_features": 3, "momentum": 0.3},
             {"x": arr(4, 3, 5, dtype=f64)}, f64)  # fmt: skip
    run_case("bn2d", "BatchNorm2d", {"num_features": 3}, {"x": arr(3, 3, 4, 4, dtype=f64) + 2}, f64)
    run_case("bn2d_f32", "BatchNorm2d", {"num_features": 5, "eps": 1e-3},
             {"x": arr(4, 5, 3, 3, dtype="float32") * 3}, "float32")  # fmt: skip


def rnn_cases() -> None:
    f64 = "float64"
    T, B, I, H = 3, 2, 3, 4
    x = lambda: arr(T, B, I, dtype=f64)  # noqa: E731
    run_case("rnn_tanh", "RNN", {"input_size": I, "hidden_size": H}, {"x": x()}, f64, "x,h")
    run_case("rnn_relu_2l", "RNN", {"input_size": I, "hidden_size": H, "num_layers": 2,
             "nonlinearity": "relu"}, {"x": x(), "h0": arr(2, B, H, dtype=f64)}, f64,
             "x,h")  # fmt: skip
    run_case("lstm", "LSTM", {"input_size": I, "hidden_size": H}, {"x": x()}, f64, "x,(h,c)")
    run_case("lstm_2l_bi_state", "LSTM", {"input_size": I, "hidden_size": H, "num_layers": 2,
             "bidirectional": True}, {"x": x(), "h0": arr(4, B, H, dtype=f64),
             "c0": arr(4, B, H, dtype=f64)}, f64, "x,(h,c)")  # fmt: skip
    run_case("lstm_batch_first", "LSTM", {"input_size": I, "hidden_size": H, "batch_first": True},
             {"x": arr(B, T, I, dtype=f64)}, f64, "x,(h,c)")  # fmt: skip
    run_case("lstm_f32", "LSTM", {"input_size": I, "hidden_size": 8},
             {"x": arr(T, B, I, dtype="float32")}, "float32", "x,(h,c)")  # fmt: skip
    run_case("gru", "GRU", {"input_size": I, "hidden_size": H}, {"x": x(), "h0":
             arr(1, B, H, dtype=f64)}, f64, "x,h")  # fmt: skip
    run_case("gru_2l_bi_bf", "GRU", {"input_size": I, "hidden_size": H, "num_layers": 2,
             "bidirectional": True, "batch_first": True, "bias": False},
             {"x": arr(B, T, I, dtype=f64)}, f64, "x,h")  # fmt: skip


def pack(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One float64 vector and one JSON index per case: hundreds of tiny .npy members would
    cost more in zip headers than in data. Values of every dtype here are exact in float64."""
    cases: dict[str, dict[str, np.ndarray]] = {}
    for key, value in arrays.items():
        case, _, rest = key.partition("/")
        cases.setdefault(case, {})[rest] = value
    packed = {}
    for case, items in cases.items():
        index, chunks, offset = {}, [], 0
        for rest, value in items.items():
            if value.dtype.kind == "U":
                index[rest] = {"text": str(value)}
                continue
            index[rest] = {"shape": list(value.shape), "dtype": str(value.dtype), "at": offset}
            chunks.append(value.astype(np.float64).ravel())
            offset += value.size
        packed[f"{case}/data"] = np.concatenate(chunks)
        packed[f"{case}/index"] = np.array(json.dumps(index))
    return packed


if __name__ == "__main__":
    conv_cases()
    pool_cases()
    bn_cases()
    rnn_cases()
    np.savez_compressed(OUT, **pack(store))
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KB, {len(store)} arrays)")
