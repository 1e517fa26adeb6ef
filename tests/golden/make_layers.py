"""Write tests/golden/layers.npz: PyTorch outputs and gradients for every layer of issue 4 (dense,
activations, dropout, flatten, conv, pooling, batch norm, recurrent) and small Sequential models.

Run with PyTorch installed (never needed by the test suite): python tests/golden/make_layers.py
Each case stores a JSON config (layer class and arguments), its inputs, the module's state dict
(PyTorch key names) before the step, the outputs, one fixed random gradient per output, and the
gradients of the inputs and parameters for sum(output_i * gy_i); pack() puts each case in one
float64 vector plus a JSON index. BatchNorm cases also store the state after the training step
and an output in evaluation mode. Most cases are float64; a few float32 cases check gnn's float32
path against PyTorch's. Config options: "mode" ("train" or "eval" for the recorded step), "pre"
(training forwards under no_grad before the state is stored, so running statistics are not
trivial), "keys" (the state dict's key order, for Sequential models). New cases go at the end,
so the random inputs of the older ones stay the same.
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


def build(cls: str, kwargs: dict) -> nn.Module:
    """The PyTorch module; "Sequential" takes {"layers": [[cls, kwargs], ...]}."""
    if cls == "Sequential":
        return nn.Sequential(*[build(c, kw) for c, kw in kwargs["layers"]])
    return getattr(nn, cls)(**kwargs)


def run_case(
    name: str,
    cls: str,
    kwargs: dict,
    inputs: dict,
    dtype: str,
    call: str = "x",
    mode: str = "train",
    pre: int = 0,
) -> None:
    """Build the layer, run forward (call: how inputs are passed), backward, store everything."""
    torch.manual_seed(len(store))
    module = build(cls, kwargs).to(getattr(torch, dtype))
    for m in module.modules():
        if type(m).__name__.startswith("BatchNorm") and m.affine:
            with torch.no_grad():  # non-trivial affine parameters
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    with torch.no_grad():
        for _ in range(pre):  # running statistics move away from (0, 1)
            module(torch.tensor(inputs["x"]) * 1.5 + 0.5)
    module.train(mode == "train")
    config = {"cls": cls, "kwargs": kwargs, "dtype": dtype, "call": call, "mode": mode}
    if cls == "Sequential":
        config["keys"] = list(module.state_dict())
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


def dense_cases() -> None:
    """Linear, Identity, the activation modules, Flatten and Dropout (in evaluation mode)."""
    f64 = "float64"
    run_case("linear", "Linear", {"in_features": 5, "out_features": 3},
             {"x": arr(4, 5, dtype=f64)}, f64)  # fmt: skip
    run_case("linear_nobias_3d", "Linear", {"in_features": 4, "out_features": 2, "bias": False},
             {"x": arr(2, 3, 4, dtype=f64)}, f64)  # fmt: skip
    run_case("linear_f32", "Linear", {"in_features": 16, "out_features": 8},
             {"x": arr(4, 16, dtype="float32")}, "float32")  # fmt: skip
    run_case("identity", "Identity", {}, {"x": arr(3, 4, dtype=f64)}, f64)
    for cls, kw in (("ReLU", {}), ("LeakyReLU", {"negative_slope": 0.2}), ("Sigmoid", {}),
                    ("Tanh", {}), ("GELU", {}), ("GELU", {"approximate": "tanh"})):  # fmt: skip
        run_case(f"act_{cls}_{kw.get('approximate', '')}", cls, kw, {"x": arr(3, 5, dtype=f64) * 2},
                 f64)  # fmt: skip
    run_case("act_Sigmoid_f32", "Sigmoid", {}, {"x": arr(4, 6, dtype="float32") * 3}, "float32")
    run_case("softmax_dim1", "Softmax", {"dim": 1}, {"x": arr(2, 3, 4, dtype=f64)}, f64)
    run_case("softmax_f32", "Softmax", {"dim": -1}, {"x": arr(3, 7, dtype="float32") * 4},
             "float32")  # fmt: skip
    run_case("flatten", "Flatten", {}, {"x": arr(2, 3, 4, 5, dtype=f64)}, f64)
    run_case("flatten_mid", "Flatten", {"start_dim": 1, "end_dim": 2},
             {"x": arr(2, 3, 4, 5, dtype=f64)}, f64)  # fmt: skip
    run_case("dropout_eval", "Dropout", {"p": 0.4}, {"x": arr(3, 4, dtype=f64)}, f64, mode="eval")


def more_cases() -> None:
    """Options the first cases leave out: no affine / no tracking / cumulative batch norm,
    depthwise and unbatched convolutions, dilated transposed ones, every recurrent option."""
    f64 = "float64"
    run_case("bn1d_noaffine", "BatchNorm1d", {"num_features": 3, "affine": False},
             {"x": arr(5, 3, dtype=f64)}, f64)  # fmt: skip
    run_case("bn2d_notrack", "BatchNorm2d", {"num_features": 2, "track_running_stats": False},
             {"x": arr(3, 2, 3, 3, dtype=f64)}, f64)  # fmt: skip
    run_case("bn1d_cumulative", "BatchNorm1d", {"num_features": 4, "momentum": None},
             {"x": arr(5, 4, dtype=f64)}, f64, pre=2)  # fmt: skip
    run_case("bn2d_eval_pre", "BatchNorm2d", {"num_features": 3}, {"x": arr(2, 3, 3, 3, dtype=f64)},
             f64, mode="eval", pre=3)  # fmt: skip
    run_case("conv_depthwise_valid", "Conv2d", {"in_channels": 4, "out_channels": 8,
             "kernel_size": 3, "stride": 2, "padding": "valid", "groups": 4, "bias": False},
             {"x": arr(2, 4, 7, 7, dtype=f64)}, f64)  # fmt: skip
    run_case("conv_unbatched", "Conv2d", {"in_channels": 2, "out_channels": 3,
             "kernel_size": [2, 3], "padding": [1, 0], "stride": [1, 2]},
             {"x": arr(2, 5, 6, dtype=f64)}, f64)  # fmt: skip
    run_case("conv_dilated_same", "Conv2d", {"in_channels": 3, "out_channels": 2,
             "kernel_size": 3, "padding": "same", "dilation": 2},
             {"x": arr(2, 3, 6, 5, dtype=f64)}, f64)  # fmt: skip
    run_case("convT_dil_outpad_nobias", "ConvTranspose2d", {"in_channels": 2, "out_channels": 4,
             "kernel_size": 3, "stride": 3, "padding": 2, "output_padding": 2, "dilation": 2,
             "groups": 2, "bias": False}, {"x": arr(2, 2, 3, 4, dtype=f64)}, f64)  # fmt: skip
    run_case("convT_unbatched", "ConvTranspose2d", {"in_channels": 3, "out_channels": 2,
             "kernel_size": 2, "stride": 2}, {"x": arr(3, 3, 3, dtype=f64)}, f64)  # fmt: skip
    run_case("maxpool_unbatched", "MaxPool2d", {"kernel_size": [3, 2], "stride": [1, 2]},
             {"x": arr(2, 6, 7, dtype=f64)}, f64)  # fmt: skip
    run_case("avgpool_divisor", "AvgPool2d", {"kernel_size": 2, "divisor_override": 3},
             {"x": arr(2, 2, 4, 4, dtype=f64)}, f64)  # fmt: skip

    T, B, I, H = 4, 3, 3, 5
    run_case("rnn_tanh_2l_bi_bf_state", "RNN", {"input_size": I, "hidden_size": H,
             "num_layers": 2, "bidirectional": True, "batch_first": True},
             {"x": arr(B, T, I, dtype=f64), "h0": arr(4, B, H, dtype=f64)}, f64,
             "x,h")  # fmt: skip
    run_case("rnn_relu_unbatched_state", "RNN", {"input_size": I, "hidden_size": H,
             "nonlinearity": "relu", "bias": False},
             {"x": arr(T, I, dtype=f64), "h0": arr(1, H, dtype=f64)}, f64, "x,h")  # fmt: skip
    run_case("rnn_f32", "RNN", {"input_size": I, "hidden_size": 8},
             {"x": arr(T, B, I, dtype="float32")}, "float32", "x,h")  # fmt: skip
    run_case("gru_bi_state", "GRU", {"input_size": I, "hidden_size": H, "bidirectional": True},
             {"x": arr(T, B, I, dtype=f64), "h0": arr(2, B, H, dtype=f64)}, f64,
             "x,h")  # fmt: skip
    run_case("gru_2l_unbatched", "GRU", {"input_size": I, "hidden_size": H, "num_layers": 2},
             {"x": arr(T, I, dtype=f64)}, f64, "x,h")  # fmt: skip
    run_case("gru_f32", "GRU", {"input_size": I, "hidden_size": 8},
             {"x": arr(T, B, I, dtype="float32")}, "float32", "x,h")  # fmt: skip
    run_case("lstm_3l_dropout_eval_state", "LSTM", {"input_size": I, "hidden_size": H,
             "num_layers": 3, "dropout": 0.5}, {"x": arr(T, B, I, dtype=f64),
             "h0": arr(3, B, H, dtype=f64), "c0": arr(3, B, H, dtype=f64)}, f64, "x,(h,c)",
             mode="eval")  # fmt: skip
    run_case("lstm_bi_nobias_bf_state", "LSTM", {"input_size": I, "hidden_size": H,
             "bidirectional": True, "bias": False, "batch_first": True},
             {"x": arr(B, T, I, dtype=f64), "h0": arr(2, B, H, dtype=f64),
              "c0": arr(2, B, H, dtype=f64)}, f64, "x,(h,c)")  # fmt: skip
    run_case("lstm_unbatched_state", "LSTM", {"input_size": I, "hidden_size": H},
             {"x": arr(T, I, dtype=f64), "h0": arr(1, H, dtype=f64),
              "c0": arr(1, H, dtype=f64)}, f64, "x,(h,c)")  # fmt: skip


def model_cases() -> None:
    """Sequential models of many layers: a PyTorch state dict loads by key name and gives the
    same outputs and gradients, in evaluation (running statistics) and in training."""
    f64 = "float64"
    body = [
        ["Conv2d", {"in_channels": 1, "out_channels": 4, "kernel_size": 3, "padding": 1}],
        ["BatchNorm2d", {"num_features": 4}],
        ["ReLU", {}],
        ["MaxPool2d", {"kernel_size": 2}],  # (N, 4, 4, 4)
        ["ConvTranspose2d", {"in_channels": 4, "out_channels": 2, "kernel_size": 2, "stride": 2}],
        ["AvgPool2d", {"kernel_size": 2}],  # (N, 2, 4, 4)
        ["Flatten", {}],
        ["Linear", {"in_features": 32, "out_features": 16}],
        ["LayerNorm", {"normalized_shape": 16}],
        ["GELU", {"approximate": "tanh"}],
    ]
    head = [["Linear", {"in_features": 16, "out_features": 5}], ["Softmax", {"dim": 1}]]
    run_case("model_eval", "Sequential", {"layers": body + [["Dropout", {"p": 0.3}]] + head},
             {"x": arr(3, 1, 8, 8, dtype=f64)}, f64, mode="eval", pre=2)  # fmt: skip
    run_case("model_train", "Sequential", {"layers": body + head},
             {"x": arr(3, 1, 8, 8, dtype=f64)}, f64, pre=1)  # fmt: skip
    mlp = [["Linear", {"in_features": 6, "out_features": 8}], ["BatchNorm1d", {"num_features": 8}],
           ["LeakyReLU", {"negative_slope": 0.1}], ["Linear", {"in_features": 8, "out_features": 4,
           "bias": False}], ["Tanh", {}], ["Identity", {}], ["Linear", {"in_features": 4,
           "out_features": 1}], ["Sigmoid", {}]]  # fmt: skip
    run_case("model_mlp_f32", "Sequential", {"layers": mlp},
             {"x": arr(5, 6, dtype="float32")}, "float32", pre=1)  # fmt: skip


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
    dense_cases()
    more_cases()
    model_cases()
    np.savez_compressed(OUT, **pack(store))
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KB, {len(store)} arrays)")
