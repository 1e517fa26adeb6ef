"""Gradient homes (issue 14): on the optimizer's flat path, ops write parameter gradients straight
into the flat gradient buffer (gnn.autograd.set_home / Function.grad_home), so the step copies
none of them. Training must be exactly what the per-parameter path does, in every way gradients
arrive (accumulation, retain_graph, a parameter used twice, zero_grad(set_to_none=False)).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

import gnn
import gnn.nn as nn
from gnn import autograd
from gnn.models import GPT, GPTConfig

MODES = ("plain", "accumulate", "retain", "keep_zeros")


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(6, 16), nn.GELU(), nn.LayerNorm(16), nn.Linear(16, 3))


def _gpt() -> nn.Module:  # token embedding and LM head tied: one parameter used twice
    return GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16, dropout=0.0))


def _cnn() -> nn.Module:  # grouped and plain convolutions, with and without a bias
    return nn.Sequential(
        nn.Conv2d(4, 6, 3, padding=1, groups=2),
        nn.ReLU(),
        nn.Conv2d(6, 5, 3, stride=2),
        nn.ReLU(),
        nn.Conv2d(5, 3, 1, bias=False),
        nn.Flatten(),
        nn.Linear(12, 3),
    )


def _batches(kind: str, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    if kind == "mlp":
        return [
            (rng.standard_normal((5, 6)).astype(np.float32), rng.integers(0, 3, 5))
            for _ in range(n)
        ]
    if kind == "cnn":
        return [
            (rng.standard_normal((2, 4, 6, 6)).astype(np.float32), rng.integers(0, 3, 2))
            for _ in range(n)
        ]
    return [(rng.integers(0, 11, (2, 8)), rng.integers(0, 11, (2, 8))) for _ in range(n)]


def _loss(kind: str, model: nn.Module, batch: tuple, device: str) -> gnn.Tensor:
    x, y = (gnn.tensor(a).to(device) for a in batch)
    out = model(x)
    if kind == "gpt":
        out = out[0] if isinstance(out, tuple) else out
        out, y = out.reshape(-1, out.shape[-1]), y.reshape(-1)
    return nn.functional.cross_entropy(out, y)


def _optimizer(model: nn.Module, foreach: bool | None) -> gnn.optim.Optimizer:
    params = list(model.parameters())
    decay = [p for p in params if p.ndim >= 2]
    rest = [p for p in params if p.ndim < 2]
    return gnn.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
        lr=1e-2,
        foreach=foreach,
    )


def _train(kind: str, model: nn.Module, foreach: bool | None, mode: str, device: str) -> list:
    """Three steps; returns per step the gradients (before the update) and the parameters."""
    opt = _optimizer(model, foreach)
    history = []
    batches = _batches(kind, 6)
    for step in range(3):
        opt.zero_grad(set_to_none=mode != "keep_zeros")
        if mode == "accumulate":
            for b in batches[2 * step : 2 * step + 2]:
                _loss(kind, model, b, device).backward()
        elif mode == "retain":
            loss = _loss(kind, model, batches[step], device)
            loss.backward(retain_graph=True)
            loss.backward()
        else:
            _loss(kind, model, batches[step], device).backward()
        grads = [None if p.grad is None else p.grad.numpy().copy() for p in model.parameters()]
        opt.step()
        history.append((grads, [p.numpy().copy() for p in model.parameters()]))
    return history


def _same_history(got: list, want: list, exact: bool) -> None:
    for step, ((g1, p1), (g2, p2)) in enumerate(zip(got, want)):
        for i, (a, b) in enumerate(zip(g1 + p1, g2 + p2)):
            what = f"step {step}, {'grad' if i < len(g1) else 'param'} {i % len(g1)}"
            assert (a is None) == (b is None), what
            if a is None:
                continue
            if exact:
                np.testing.assert_array_equal(a, b, err_msg=what)
            else:
                np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6, err_msg=what)


def _device_or_skip(device: str) -> None:
    if device == "cuda" and not gnn.cuda.is_available():
        pytest.skip("needs CuPy (GNN_FAKE_CUDA=1 for the fake)")


@pytest.mark.parametrize(
    "device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)], ids=["cpu", "cuda"]
)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", ["mlp", "gpt", "cnn"])
def test_flat_path_with_homes_equals_per_parameter_path(kind: str, mode: str, device: str) -> None:
    _device_or_skip(device)
    gnn.manual_seed(0)
    base = {"mlp": _mlp, "gpt": _gpt, "cnn": _cnn}[kind]()
    flat = copy.deepcopy(base).to(device)
    per_param = copy.deepcopy(base).to(device)
    got = _train(kind, flat, True, mode, device)
    want = _train(kind, per_param, False, mode, device)
    _same_history(got, want, exact=True)
    homed = [
        p
        for p in flat.parameters()
        if (e := autograd.home_of(p)) is not None and p.grad is not None and p.grad.array is e[0]
    ]
    # zero_grad(set_to_none=False) keeps the first step's .grad Tensors (made before the homes)
    assert homed or mode == "keep_zeros", "no gradient landed in its home"
    if kind == "cnn" and device == "cuda" and mode == "plain":  # the conv kernels' path
        convs = [m for m in flat.modules() if isinstance(m, nn.Conv2d)]
        want_homed = [m.weight for m in convs] + [m.bias for m in convs if m.bias is not None]
        assert all(any(p is q for q in homed) for p in want_homed), "a conv gradient was copied"
    if device == "cuda":  # the first step's gradients equal the CPU's (Adam then amplifies
        cpu = _train(kind, copy.deepcopy(base), False, mode, "cpu")  # rounding in tiny ones)
        for i, (a, b) in enumerate(zip(got[0][0], cpu[0][0])):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6, err_msg=f"grad {i}")


@pytest.mark.parametrize(
    "device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)], ids=["cpu", "cuda"]
)
def test_a_kept_gradient_keeps_its_values(device: str) -> None:
    """PyTorch: zero_grad() drops .grad; a Tensor kept from before is not written to again."""
    _device_or_skip(device)
    gnn.manual_seed(0)
    model = _mlp().to(device)
    opt = _optimizer(model, True)
    batches = _batches("mlp", 3)
    kept = []
    for b in batches:
        opt.zero_grad()
        _loss("mlp", model, b, device).backward()
        kept.append([(p.grad, p.grad.numpy().copy()) for p in model.parameters()])
        opt.step()
    for step in kept:
        for g, values in step:
            np.testing.assert_array_equal(g.numpy(), values)


@pytest.mark.parametrize(
    "device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)], ids=["cpu", "cuda"]
)
def test_a_layer_used_twice_and_a_parameter_twice_in_one_op(device: str) -> None:
    _device_or_skip(device)
    gnn.manual_seed(0)
    base = nn.Linear(4, 4)
    models = [copy.deepcopy(base).to(device) for _ in range(2)]
    x = gnn.randn(3, 4).to(device)
    results = []
    for model, foreach in zip(models, (True, False)):
        opt = gnn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, foreach=foreach)
        for _ in range(3):
            opt.zero_grad()
            w = model.weight
            loss = (model(model(x)) ** 2).sum() + (w * w).sum()
            loss.backward()
            opt.step()
        results.append([p.numpy().copy() for p in model.parameters()])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_the_cpu_default_path_sets_no_homes() -> None:
    """foreach=None on the CPU is the per-parameter path: no homes, nothing for backward to do."""
    model = _mlp()
    opt = _optimizer(model, None)
    _loss("mlp", model, _batches("mlp", 1)[0], "cpu").backward()
    opt.step()
    assert all(autograd.home_of(p) is None for p in model.parameters())


@pytest.mark.gpu
def test_a_model_moved_off_the_gpu_mid_training_gets_no_stale_home() -> None:
    """After model.to("cpu") a parameter's array is no longer its flat view: its GPU home is not
    offered to the CPU ops (the step then rebuilds the flat buffers on the CPU)."""
    _device_or_skip("cuda")
    gnn.manual_seed(0)
    base = _mlp()
    results = []
    for foreach in (True, False):
        model = copy.deepcopy(base).to("cuda")
        opt = _optimizer(model, foreach)
        for i, b in enumerate(_batches("mlp", 4)):
            device = "cuda" if i < 2 else "cpu"
            if i == 2:
                model.to("cpu")
            opt.zero_grad()
            _loss("mlp", model, b, device).backward()
            opt.step()
        results.append([p.numpy().copy() for p in model.parameters()])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)], ids=["cpu", "cuda"]
)
@pytest.mark.parametrize("mode", ["plain", "retain"])
@pytest.mark.parametrize("hidden", [8, 64])  # biases 128 bytes: padded apart; 1024: back to back
def test_lstm_weights_land_in_their_homes(device: str, mode: str, hidden: int) -> None:
    _device_or_skip(device)
    gnn.manual_seed(0)
    base = nn.ModuleList([nn.LSTM(4, hidden, num_layers=2), nn.Linear(hidden, 3)])
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((5, 2, 4)).astype(np.float32) for _ in range(3)]
    results = []
    for foreach in (True, False):
        model = copy.deepcopy(base).to(device)
        opt = _optimizer(model, foreach)
        for x in xs:
            opt.zero_grad()
            out, _ = model[0](gnn.tensor(x).to(device))
            loss = (model[1](out) ** 2).mean()
            loss.backward(retain_graph=mode == "retain")
            if mode == "retain":
                loss.backward()
            opt.step()
        results.append([p.numpy().copy() for p in model.parameters()])
        if foreach and mode == "plain":
            homed = {
                n
                for n, p in model.named_parameters()
                if (e := autograd.home_of(p)) is not None and p.grad.array is e[0]
            }
            assert any("weight_hh" in n for n in homed), homed
            if device == "cuda":  # the fused path: both biases' sums written into their homes
                biases = {n for n, _ in model.named_parameters() if n.startswith("0.bias")}
                assert biases and biases <= homed, biases - homed
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
