"""The flat (foreach / fused) optimizer path of gnn/optim/_flat.py against the per-parameter one.

The flat path calls each optimizer's own update rule over whole flat buffers, so in float64 the two
must agree bit for bit: every test here compares with assert_array_equal.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import gnn
from gnn import nn, optim

CONFIGS = [
    ("Adam", {}),
    ("Adam", {"weight_decay": 0.1, "amsgrad": True}),
    ("Adam", {"maximize": True}),
    ("AdamW", {"weight_decay": 0.05}),
    ("AdamW", {"amsgrad": True, "maximize": True}),
    ("SGD", {"lr": 0.05}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    ("SGD", {"lr": 0.05, "momentum": 0.5, "dampening": 0.3, "maximize": True}),
    ("RMSprop", {}),
    ("RMSprop", {"momentum": 0.9, "centered": True, "weight_decay": 0.01}),
]


class Net(nn.Module):
    """Two layers, a parameter the loss uses every other call (its part's step counts part ways)
    and one it never uses (it never gets a gradient)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(5, 7)
        self.b = nn.Linear(7, 3)
        self.sometimes = nn.Parameter(gnn.ones(3, dtype=gnn.float64))
        self.unused = nn.Parameter(gnn.ones(4, dtype=gnn.float64))
        self.calls = 0

    def forward(self, x: gnn.Tensor) -> gnn.Tensor:
        self.calls += 1
        y = self.b(self.a(x).tanh())
        return y * self.sometimes if self.calls % 2 else y


def _net(device: str, seed: int = 0) -> Net:
    gnn.manual_seed(seed)
    return Net().to(device, gnn.float64)


def _groups(net: Net, kwargs: dict[str, Any]) -> list[dict[str, Any]]:
    """Groups with their own hyperparameters: a weight-decay exclusion for biases, other lrs."""
    extra = {"lr": kwargs.get("lr", 1e-2) * 0.5}
    if "weight_decay" in kwargs:
        extra["weight_decay"] = 0.0
    return [
        {"params": [net.a.weight, net.b.weight]},
        {"params": [net.a.bias, net.b.bias], **extra},
        {"params": [net.sometimes, net.unused], "lr": kwargs.get("lr", 1e-2) * 2},
    ]


def _make(name: str, net: Net, kwargs: dict[str, Any], flat: bool) -> optim.Optimizer:
    return getattr(optim, name)(_groups(net, kwargs), **kwargs, foreach=flat)


def _train(net: Net, opt: optim.Optimizer, steps: int, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    device = net.a.weight.device
    for _ in range(steps):
        x = gnn.tensor(rng.standard_normal((6, 5)), device=device)
        opt.zero_grad()
        (net(x) ** 2).mean().backward()
        opt.step()


def _assert_same(net1: Net, opt1: optim.Optimizer, net2: Net, opt2: optim.Optimizer) -> None:
    for (k, p1), (_, p2) in zip(net1.named_parameters(), net2.named_parameters()):
        np.testing.assert_array_equal(p1.numpy(), p2.numpy(), err_msg=k)
    s1, s2 = opt1.state_dict(), opt2.state_dict()
    assert s1["state"].keys() == s2["state"].keys()
    for i, entry in s1["state"].items():
        assert entry.keys() == s2["state"][i].keys()
        for k, v in entry.items():
            other = s2["state"][i][k]
            if isinstance(v, gnn.Tensor):
                np.testing.assert_array_equal(v.numpy(), other.numpy(), err_msg=f"{i} {k}")
            else:
                assert v == other


def _share_a_buffer(opt: optim.Optimizer, x: gnn.Tensor, y: gnn.Tensor) -> bool:
    """Whether x and y are views into one flat buffer of the optimizer (on any backend)."""
    for entry in opt.__dict__.get("_flat_parts", {}).values():
        parts = entry[-1]
        for part in parts:
            arrays = [v for p, v in zip(part.params, part.views) if p.array is v]
            if any(x.array is a for a in arrays) and any(y.array is a for a in arrays):
                return True
    return False


@pytest.mark.parametrize(("name", "kwargs"), CONFIGS)
def test_flat_path_equals_the_per_parameter_path(
    device: str, name: str, kwargs: dict[str, Any]
) -> None:
    net1, net2 = _net(device), _net(device)
    opt1, opt2 = _make(name, net1, kwargs, False), _make(name, net2, kwargs, True)
    _train(net1, opt1, 4)
    _train(net2, opt2, 4)
    _assert_same(net1, opt1, net2, opt2)
    # the flat path really ran: the first group's parameters share one buffer
    for net, opt, flat in ((net1, opt1, False), (net2, opt2, True)):
        for x, y in ((net.a.weight, net.b.weight), (net.a.bias, net.b.bias)):
            assert _share_a_buffer(opt, x, y) is flat
        if device == "cpu":  # and on the CPU the arrays really are views of one buffer
            base = net.a.weight.array.base
            assert (base is not None and base is net.b.weight.array.base) is flat
    assert net2.unused.grad is None


@pytest.mark.parametrize(("name", "kwargs"), [CONFIGS[1], CONFIGS[6], CONFIGS[10]])
def test_state_dicts_move_between_flat_and_per_parameter_optimizers(
    name: str, kwargs: dict[str, Any]
) -> None:
    ref_net = _net("cpu")
    ref = _make(name, ref_net, kwargs, False)
    _train(ref_net, ref, 6)
    for first in (True, False):
        net = _net("cpu")
        opt = _make(name, net, kwargs, first)
        _train(net, opt, 3)
        saved = opt.state_dict()
        net2 = _net("cpu")
        net2.load_state_dict(net.state_dict())
        net2.calls = net.calls
        opt2 = _make(name, net2, kwargs, not first)
        opt2.load_state_dict(saved)
        for g in opt2.param_groups:  # the saved groups carry foreach, as PyTorch's do: take it back
            g["foreach"] = not first
        _train(net2, opt2, 3, seed=7)
        # the same three steps again on the reference's twin
        twin = _net("cpu")
        twin_opt = _make(name, twin, kwargs, False)
        _train(twin, twin_opt, 3)
        _train(twin, twin_opt, 3, seed=7)
        _assert_same(twin, twin_opt, net2, opt2)


def test_zero_grad_and_kept_gradients_keep_their_meaning() -> None:
    net = _net("cpu")
    opt = optim.Adam(net.parameters(), foreach=True)
    _train(net, opt, 2)
    kept = net.a.weight.grad
    before = kept.numpy().copy()
    opt.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    _train(net, opt, 1, seed=3)
    np.testing.assert_array_equal(kept.numpy(), before)  # an old gradient never changes
    opt.zero_grad(set_to_none=False)
    assert all(float(abs(p.grad).sum()) == 0 for p in net.parameters() if p.grad is not None)


def test_replaced_parameter_arrays_are_flattened_again() -> None:
    """Module.to, Module.load_state_dict, p.data = t and Optimizer.load_state_dict after the first
    flat step: training goes on exactly as on the per-parameter path."""
    nets = [_net("cpu"), _net("cpu")]
    opts = [_make("AdamW", n, {"weight_decay": 0.1}, f) for n, f in zip(nets, (False, True))]

    def both(fn: Any) -> None:
        for n, o in zip(nets, opts):
            fn(n, o)

    both(lambda n, o: _train(n, o, 2))
    older = opts[0].state_dict()  # copied: the optimizer's own arrays change in place
    older["state"] = {
        i: {k: v.numpy().copy() if isinstance(v, gnn.Tensor) else v for k, v in e.items()}
        for i, e in older["state"].items()
    }
    for g in older["param_groups"]:  # keep each optimizer's own path through the load
        del g["foreach"], g["fused"]
    both(lambda n, o: n.to(gnn.float32).to(gnn.float64))
    both(lambda n, o: _train(n, o, 2, seed=2))
    donor = _net("cpu", seed=5).state_dict()
    both(lambda n, o: n.load_state_dict(donor))
    both(lambda n, o: _train(n, o, 2, seed=3))
    new = np.linspace(-1, 1, 21).reshape(3, 7)
    both(lambda n, o: setattr(n.b.weight, "data", gnn.tensor(new.copy())))
    both(lambda n, o: _train(n, o, 2, seed=4))
    both(lambda n, o: o.load_state_dict(older))  # an older state: different moments and steps
    both(lambda n, o: _train(n, o, 2, seed=5))
    _assert_same(nets[0], opts[0], nets[1], opts[1])
    assert _share_a_buffer(opts[1], nets[1].a.weight, nets[1].b.weight)


def test_flags_choose_the_path() -> None:
    """foreach/fused as PyTorch spells them; both stay in the param groups."""
    for flags, flat in (({}, False), ({"fused": True}, True), ({"foreach": False}, False)):
        net = _net("cpu")
        opt = optim.SGD(net.parameters(), lr=0.1, momentum=0.9, **flags)
        _train(net, opt, 2)
        assert _share_a_buffer(opt, net.a.weight, net.b.weight) is flat, flags
        assert {"foreach", "fused"} <= opt.param_groups[0].keys()


@pytest.mark.gpu
def test_flat_step_on_the_gpu_costs_a_launch_per_parameter_plus_the_rule() -> None:
    """On CUDA the flat path is the default (and matches the CPU's per-parameter path): an Adam
    step is one whole-buffer rule (the gradients are already in the flat buffer), without syncs
    or host-to-device copies."""
    if not gnn.cuda_available():
        pytest.skip("needs CuPy and a CUDA device")
    cupy = pytest.importorskip("cupy")
    if not getattr(cupy, "FAKE", False):
        pytest.skip("counts launches on the fake CuPy")
    gpu, cpu = _net("cuda"), _net("cpu")
    opt_gpu, opt_cpu = optim.Adam(gpu.parameters()), optim.Adam(cpu.parameters())
    _train(gpu, opt_gpu, 3)
    _train(cpu, opt_cpu, 3)
    for (k, a), (_, b) in zip(gpu.named_parameters(), cpu.named_parameters()):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-15, err_msg=k)

    def launches(foreach: bool | None) -> int:
        net = _net("cuda")
        params = [net.a.weight, net.a.bias, net.b.weight, net.b.bias]
        opt = optim.Adam(params, foreach=foreach)
        x = gnn.ones(2, 5, device="cuda", dtype=gnn.float64)
        for _ in range(3):  # the last step is counted: flattened and state made before it
            opt.zero_grad()
            net.b(net.a(x).tanh()).sum().backward()
            with cupy.counting() as c:
                opt.step()
        assert c.syncs == 0 and c.h2d == 0, c.by_source()
        return c.launches

    per_param, flat = launches(False), launches(None)
    # per parameter: the rule (float64: the reference) with its bias corrections, made on the
    # device from the device's step count (so that a CUDA graph replays them), for each; flat: the
    # same once, the step counted in the part's clock, and no gradient copy (Linear writes its
    # weight and bias gradients into their homes in the flat buffer)
    assert per_param == 4 * (flat - 1)
