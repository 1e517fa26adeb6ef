"""nn.Module and the containers: traversal, PyTorch's state-dict key names, strict loading that
lists every problem, modes, dtype and device moves (with the optimizer following), buffers, repr.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

import gnn
import gnn.backend as backend_mod
import gnn.functional as F
from gnn import nn, optim
from gnn.backend import Device, NumpyBackend


class Net(nn.Module):
    """A model with a nested container, a buffer and an absent bias, like a user would write."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU())
        self.heads = nn.ModuleDict({"cls": nn.Linear(8, 3), "aux": nn.Linear(8, 1, bias=False)})
        self.blocks = nn.ModuleList([nn.Linear(3, 3), nn.Tanh()])
        self.register_buffer("scale", gnn.ones(1))
        self.register_buffer("cache", gnn.zeros(2), persistent=False)

    def forward(self, x: gnn.Tensor) -> gnn.Tensor:
        h = self.features(x).flatten(1)
        out = self.heads["cls"](h)
        for block in self.blocks:
            out = block(out)
        return out * self.scale


# The keys PyTorch gives the same architecture (torch.nn, same attribute names), in its order.
TORCH_KEYS = [
    "scale", "features.0.weight", "features.0.bias", "features.1.weight", "features.1.bias",
    "features.1.running_mean", "features.1.running_var", "features.1.num_batches_tracked",
    "heads.cls.weight", "heads.cls.bias", "heads.aux.weight", "blocks.0.weight", "blocks.0.bias",
]  # fmt: skip


def test_state_dict_has_pytorch_keys_order_and_shapes() -> None:
    net = Net()
    sd = net.state_dict()
    assert list(sd) == TORCH_KEYS
    assert sd["features.0.weight"].shape == (2, 1, 3, 3)
    assert sd["heads.aux.weight"].shape == (1, 8)
    assert sd["features.1.num_batches_tracked"].dtype == np.int64
    assert "cache" not in sd  # non-persistent buffer
    assert all(not t.requires_grad for t in sd.values())  # detached views ...
    sd["blocks.0.bias"].array[...] = 7.0  # ... that share memory, as PyTorch's do
    assert np.all(net.blocks[0].bias.numpy() == 7.0)
    kept = net.state_dict(prefix="net.", keep_vars=True)
    assert list(kept) == ["net." + k for k in TORCH_KEYS]
    assert kept["net.blocks.0.bias"] is net.blocks[0].bias


def test_traversal_parameters_children_modules() -> None:
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == [k for k in TORCH_KEYS if "running" not in k and "tracked" not in k][1:]
    assert [id(p) for p in net.parameters()] == [id(p) for _, p in net.named_parameters()]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in net.parameters())
    assert [type(m).__name__ for m in net.children()] == ["Sequential", "ModuleDict", "ModuleList"]
    assert [n for n, _ in net.named_children()] == ["features", "heads", "blocks"]
    mods = [n for n, _ in net.named_modules()]
    assert mods == [
        "", "features", "features.0", "features.1", "features.2", "heads", "heads.cls",
        "heads.aux", "blocks", "blocks.0", "blocks.1",
    ]  # fmt: skip
    assert list(net.modules())[0] is net
    assert [n for n, _ in net.named_buffers()] == [
        "scale", "cache", "features.1.running_mean", "features.1.running_var",
        "features.1.num_batches_tracked",
    ]  # fmt: skip
    assert [n for n, _ in net.features.named_parameters(recurse=False)] == []
    assert [n for n, _ in net.features[0].named_parameters(prefix="conv")] == [
        "conv.weight", "conv.bias",
    ]  # fmt: skip


def test_shared_modules_and_parameters() -> None:
    shared = nn.Linear(2, 2)
    seq = nn.Sequential(shared, nn.ReLU(), shared)
    # parameters() and modules() give each object once; the state dict has every path (PyTorch).
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias"]
    assert len(list(seq.modules())) == 3
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    seq.load_state_dict(seq.state_dict())


def test_load_state_dict_round_trip_and_strict_errors_list_everything() -> None:
    gnn.manual_seed(0)
    src, dst = Net(), Net()
    dst.load_state_dict(src.state_dict())
    for (k, a), b in zip(src.state_dict().items(), dst.state_dict().values()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)

    bad = {k: v.numpy() for k, v in src.state_dict().items()}  # plain arrays are accepted too
    del bad["heads.cls.bias"], bad["features.1.running_var"]
    bad["heads.cls.extra"] = np.zeros(3)
    bad["other"] = np.zeros(1)
    bad["blocks.0.weight"] = np.zeros((3, 4))
    bad["features.0.weight"] = np.zeros((2, 1, 5, 5))
    before = {k: v.numpy().copy() for k, v in dst.state_dict().items()}
    with pytest.raises(RuntimeError) as err:
        dst.load_state_dict(bad)
    text = str(err.value)
    assert "Net" in text
    for piece in (
        "missing keys: features.1.running_var, heads.cls.bias",
        "unexpected keys: heads.cls.extra, other",
        "blocks.0.weight: checkpoint (3, 4) vs model (3, 3)",
        "features.0.weight: checkpoint (2, 1, 5, 5) vs model (2, 1, 3, 3)",
    ):
        assert piece in text
    # Nothing was changed by the failed load.
    for k, v in dst.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k], err_msg=k)


def test_load_state_dict_not_strict() -> None:
    net = Net()
    sd = {k: v for k, v in Net().state_dict().items() if not k.startswith("heads")}
    sd["unknown"] = gnn.zeros(1)
    sd["cache"] = gnn.ones(2)  # a non-persistent buffer is not loaded: it is not in the state
    missing, unexpected = net.load_state_dict(sd, strict=False)
    assert missing == ["heads.cls.weight", "heads.cls.bias", "heads.aux.weight"]
    assert unexpected == ["unknown", "cache"]
    assert np.all(net.cache.numpy() == 0)
    with pytest.raises(RuntimeError, match="size mismatch"):  # shapes are checked anyway
        net.load_state_dict({"scale": gnn.ones(2)}, strict=False)


def test_load_state_dict_casts_to_the_model_dtype() -> None:
    lin = nn.Linear(2, 2)
    lin.load_state_dict({"weight": np.eye(2, dtype=np.float64), "bias": [1, 2]})
    assert lin.weight.dtype == np.float32 and lin.bias.dtype == np.float32
    np.testing.assert_array_equal(lin.bias.numpy(), [1, 2])


def test_train_eval_recurse_and_change_behaviour() -> None:
    net = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.Dropout(0.5), nn.BatchNorm1d(4)))
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    x = gnn.randn(8, 4)
    np.testing.assert_array_equal(net(x).numpy(), net(x).numpy())  # deterministic in eval
    net.train()
    assert all(m.training for m in net.modules())
    net.train(False)
    assert not net[1][0].training


def test_buffers_are_saved_but_not_trained() -> None:
    gnn.manual_seed(0)
    bn = nn.BatchNorm1d(3)
    assert [n for n, _ in bn.named_parameters()] == ["weight", "bias"]
    assert not bn.running_mean.requires_grad
    opt = optim.SGD(bn.parameters(), lr=0.1)
    x = gnn.randn(6, 3) * 2 + 1
    opt.zero_grad()
    (bn(x) ** 2).sum().backward()
    assert bn.running_mean.grad is None
    stats = bn.running_mean.numpy().copy()
    opt.step()
    np.testing.assert_array_equal(bn.running_mean.numpy(), stats)  # only forward moves them
    assert not np.allclose(stats, 0)
    assert int(bn.num_batches_tracked.item()) == 1


def test_zero_grad() -> None:
    lin = nn.Linear(3, 2)
    lin(gnn.randn(4, 3)).sum().backward()
    assert lin.weight.grad is not None
    lin.zero_grad(set_to_none=False)
    assert np.all(lin.weight.grad.numpy() == 0)
    lin.zero_grad()
    assert lin.weight.grad is None and lin.bias.grad is None


def test_to_dtype_in_place_keeps_parameter_objects() -> None:
    net = Net()
    params = list(net.parameters())
    assert net.to(gnn.float64) is net
    assert [id(p) for p in net.parameters()] == [id(p) for p in params]
    assert all(p.dtype == np.float64 for p in net.parameters())
    assert net.features[1].running_mean.dtype == np.float64
    assert net.features[1].num_batches_tracked.dtype == np.int64  # integer buffers stay
    net.to("float32")
    assert all(p.dtype == np.float32 for p in net.parameters())
    net.to("cpu", "float64")
    assert net.scale.dtype == np.float64
    net.to(gnn.zeros(1, dtype="float32"))
    assert net.scale.dtype == np.float32
    net.double()
    assert net.blocks[0].weight.dtype == np.float64
    net.float()
    assert net.blocks[0].weight.dtype == np.float32
    assert net.to("cpu") is net
    with pytest.raises(ValueError, match="neither a device .* nor a dtype"):
        net.to("cpuu")


def test_containers() -> None:
    seq = nn.Sequential()
    assert seq.add(nn.Linear(2, 3)) is seq
    seq.add(nn.ReLU()).add(nn.Linear(3, 1))
    assert len(seq) == 3 and isinstance(seq[-1], nn.Linear)
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert seq(gnn.randn(5, 2)).shape == (5, 1)
    assert [type(m).__name__ for m in seq] == ["Linear", "ReLU", "Linear"]
    named = nn.Sequential(OrderedDict(fc=nn.Linear(2, 3), act=nn.ReLU(), out=nn.Linear(3, 1)))
    assert list(named.state_dict()) == ["fc.weight", "fc.bias", "out.weight", "out.bias"]
    assert list(named[1:].state_dict()) == ["out.weight", "out.bias"]  # slices keep names
    assert named.fc is named[0]
    with pytest.raises(TypeError, match="not a gnn.nn.Module"):
        nn.Sequential(nn.Linear(2, 2), lambda x: x)

    ml = nn.ModuleList([nn.Linear(2, 2)])
    ml.append(nn.Linear(2, 3)).extend([nn.ReLU()])
    assert len(ml) == 3 and [n for n, _ in ml.named_parameters()][-1] == "1.bias"
    ml[2] = nn.Tanh()
    assert isinstance(ml[2], nn.Tanh) and len(ml[:2]) == 2
    ml.insert(0, nn.Sigmoid())
    assert [type(m).__name__ for m in ml] == ["Sigmoid", "Linear", "Linear", "Tanh"]
    del ml[1]
    assert [n for n, _ in ml.named_parameters()] == ["1.weight", "1.bias"]  # renumbered

    seq2 = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    seq2.insert(1, nn.Tanh()).extend([nn.Linear(2, 1)])
    seq2[2] = nn.Sigmoid()
    del seq2[0]
    assert [type(m).__name__ for m in seq2] == ["Tanh", "Sigmoid", "Linear"]
    assert list(seq2.state_dict()) == ["2.weight", "2.bias"]

    md = nn.ModuleDict({"a": nn.Linear(2, 2)})
    md["b"] = nn.Linear(2, 1)
    md.update([("c", nn.ReLU())])
    assert list(md) == ["a", "b", "c"] and "b" in md and len(md) == 3
    assert list(md.keys()) == ["a", "b", "c"]
    assert [n for n, _ in md.named_parameters()] == ["a.weight", "a.bias", "b.weight", "b.bias"]
    assert isinstance(md.pop("c"), nn.ReLU) and list(md) == ["a", "b"]
    del md["a"]
    assert list(md.state_dict()) == ["b.weight", "b.bias"]
    md.clear()
    assert len(md) == 0


def test_registration_rules() -> None:
    class Bad(nn.Module):
        def __init__(self) -> None:
            self.w = nn.Parameter(gnn.zeros(2))

    with pytest.raises(AttributeError, match="super\\(\\).__init__\\(\\)"):
        Bad()
    lin = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="nn.Parameter"):
        lin.weight = gnn.zeros(2, 2)
    lin.bias = None
    assert [n for n, _ in lin.named_parameters()] == ["weight"]
    assert lin(gnn.randn(1, 2)).shape == (1, 2)
    lin.extra = nn.Parameter(gnn.zeros(1))
    assert "extra" in dict(lin.named_parameters())
    del lin.extra
    assert "extra" not in dict(lin.named_parameters())
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = lin.nope


def test_attribute_reads_follow_every_change_of_parameters_buffers_and_modules() -> None:
    """Registered entries are also plain attributes (for speed): they must never go stale."""
    m = nn.Module()
    w1, w2 = nn.Parameter(gnn.zeros(2)), nn.Parameter(gnn.ones(2))
    m.w = w1
    assert m.w is w1 and m._parameters["w"] is w1
    m.w = w2  # replaced
    assert m.w is w2 and list(m.parameters()) == [w2]
    m.w = None  # a registered parameter set to None stays registered, as absent
    assert m.w is None and "w" in m._parameters
    m.register_parameter("b", None)
    assert m.b is None
    m.b = w1
    assert m.b is w1
    m.register_buffer("stat", gnn.zeros(3))
    first = m.stat
    m.stat = gnn.ones(3)  # a buffer is replaced through the attribute
    assert m.stat is m._buffers["stat"] and m.stat is not first
    sub = nn.Linear(2, 2)
    m.sub = sub
    assert m.sub is sub and m._modules["sub"] is sub
    m.sub = nn.Parameter(gnn.zeros(1))  # a name moves from one store to another
    assert "sub" not in m._modules and isinstance(m.sub, nn.Parameter)
    for name in ("w", "b", "stat", "sub"):
        delattr(m, name)
        with pytest.raises(AttributeError, match=f"no attribute '{name}'"):
            getattr(m, name)
    assert list(m.parameters()) == [] and dict(m.named_buffers()) == {}
    seq = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    del seq[0]  # containers renumber their keys: lookups by key see the new layout
    assert isinstance(getattr(seq, "0"), nn.ReLU)


def test_a_name_lives_in_one_store_and_registering_checks_the_kind() -> None:
    """register_parameter/register_buffer move a name out of the other stores (one entry per
    name, its place kept on replacement); register_parameter takes only Parameters or None."""
    m = nn.Module()
    m.register_buffer("a", gnn.zeros(1), persistent=False)
    m.register_parameter("a", nn.Parameter(gnn.ones(1)))  # the buffer becomes a parameter
    assert "a" not in m._buffers and list(m.state_dict()) == ["a"]  # and is saved
    m.b = nn.Parameter(gnn.zeros(1))
    m.a = nn.Parameter(gnn.zeros(1))  # replaced where it was: the state dict's order stays
    assert list(m.state_dict()) == ["a", "b"]
    m.register_buffer("b", gnn.ones(1))
    assert list(m._parameters) == ["a"] and m.b is m._buffers["b"]
    m.register_buffer("c", gnn.zeros(1), persistent=False)
    m.c, m.b = gnn.ones(1), gnn.ones(1)  # a new value keeps the buffer's persistence
    assert list(m.state_dict()) == ["a", "b"] and m.c is m._buffers["c"]
    m.register_buffer("c", gnn.zeros(1))  # registered again, persistent: saved from now on
    assert list(m.state_dict()) == ["a", "b", "c"]
    del m.c
    with pytest.raises(TypeError, match="register_parameter: Tensor is not a Parameter"):
        m.register_parameter("c", gnn.zeros(1))
    assert "c" not in m._parameters


def test_repr_is_readable_and_pytorch_like() -> None:
    text = repr(Net())
    assert text.startswith("Net(\n  (features): Sequential(\n")
    for line in (
        "(0): Conv2d(1, 2, kernel_size=(3, 3), stride=(1, 1))",
        "(1): BatchNorm2d(2, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)",
        "(2): ReLU()",
        "(cls): Linear(in_features=8, out_features=3, bias=True)",
        "(aux): Linear(in_features=8, out_features=1, bias=False)",
        "(1): Tanh()",
    ):
        assert line in text
    assert repr(nn.Linear(2, 3)) == "Linear(in_features=2, out_features=3, bias=True)"
    assert repr(nn.LSTM(3, 4, 2, batch_first=True)) == "LSTM(3, 4, num_layers=2, batch_first=True)"
    assert repr(nn.Dropout(0.25)) == "Dropout(p=0.25)"


# ---- moving between devices --------------------------------------------------------------------


class _OtherBackend(NumpyBackend):
    """A second backend with its own identity (host arrays), standing in for a GPU on machines
    without one: arrays moved to it get a new owner, as they would on CuPy."""

    name = "other"

    def __init__(self) -> None:
        super().__init__()
        self.device = Device("cuda", 7)


@pytest.fixture
def other_device(monkeypatch) -> str:
    monkeypatch.setitem(backend_mod._cuda_backends, 7, _OtherBackend())
    return "cuda:7"


def _train(device_plan: dict[int, str], make_opt, steps: int = 6) -> list[np.ndarray]:
    """Train a small model, moving it (and only it) to device_plan[step] before that step."""
    gnn.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))
    opt = make_opt(model.parameters())
    rng = np.random.default_rng(0)
    device = "cpu"
    for step in range(steps):
        if step in device_plan:
            device = device_plan[step]
            model.to(device)
        x = gnn.tensor(rng.standard_normal((8, 3)).astype(np.float32), device=device)
        y = gnn.tensor(rng.standard_normal((8, 1)).astype(np.float32), device=device)
        opt.zero_grad()
        F.mse_loss(model(x), y).backward()
        opt.step()
        for p in model.parameters():
            assert p.device == device
            for k, v in opt.state.get(p, {}).items():
                if isinstance(v, gnn.Tensor):
                    assert v._be is p._be, f"optimizer state {k!r} stayed behind"
    return [t.numpy() for t in model.state_dict().values()]


OPTIMIZERS = {
    "sgd-momentum": lambda p: optim.SGD(p, lr=0.1, momentum=0.9),
    "adam": lambda p: optim.Adam(p, lr=0.01, amsgrad=True),
    "adamw": lambda p: optim.AdamW(p, lr=0.01),
    "rmsprop": lambda p: optim.RMSprop(p, lr=0.01, momentum=0.5, centered=True),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_model_and_optimizer_move_between_backends_and_keep_training(other_device, name) -> None:
    want = _train({}, OPTIMIZERS[name])
    got = _train({2: other_device, 4: "cpu"}, OPTIMIZERS[name])
    for a, b in zip(want, got):
        np.testing.assert_array_equal(a, b)


def test_optimizer_state_follows_a_dtype_change() -> None:
    lin = nn.Linear(2, 1)
    opt = optim.Adam(lin.parameters(), lr=0.01)
    lin(gnn.randn(3, 2)).sum().backward()
    opt.step()
    lin.double()
    lin.zero_grad()
    lin(gnn.randn(3, 2, dtype="float64")).sum().backward()
    opt.step()
    assert all(v.dtype == np.float64 for v in opt.state[lin.weight].values() if hasattr(v, "dtype"))


def test_weights_saved_on_one_backend_load_on_another(other_device, tmp_path) -> None:
    gnn.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2)).to(other_device)
    model.train()
    model(gnn.randn(5, 4, device=other_device))  # running stats move
    gnn.save(model.state_dict(), tmp_path / "w.safetensors")
    cpu_model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    cpu_model.load_state_dict(gnn.load(tmp_path / "w.safetensors", device="cpu"))
    cpu_model.eval(), model.eval()
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    want = model(gnn.tensor(x, device=other_device)).numpy()
    np.testing.assert_array_equal(cpu_model(gnn.tensor(x)).numpy(), want)
    # A state dict of Tensors on another device loads directly too.
    back = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2)).to(other_device)
    back.load_state_dict(cpu_model.state_dict())
    back.eval()
    np.testing.assert_array_equal(back(gnn.tensor(x, device=other_device)).numpy(), want)


@pytest.mark.gpu
@pytest.mark.skipif(not gnn.cuda_available(), reason="needs CuPy and a CUDA device")
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_model_and_optimizer_move_to_the_gpu_and_back_and_keep_training(name) -> None:
    want = _train({}, OPTIMIZERS[name])
    got = _train({2: "cuda", 4: "cpu"}, OPTIMIZERS[name])
    for a, b in zip(want, got):  # other BLAS on the GPU: close, not bit-equal (Adam's
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)  # g/|g| amplifies tiny diffs)
    losses = []
    gnn.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 1))
    opt = OPTIMIZERS[name](model.parameters())
    x, y = gnn.randn(32, 3), gnn.randn(32, 1)
    for step in range(40):
        device = "cuda" if (step // 10) % 2 else "cpu"
        model.to(device)
        opt.zero_grad()
        loss = F.mse_loss(model(x.to(device)), y.to(device))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]  # it kept learning across the moves


@pytest.mark.gpu
@pytest.mark.skipif(not gnn.cuda_available(), reason="needs CuPy and a CUDA device")
def test_checkpoint_saved_on_gpu_resumes_on_cpu(tmp_path) -> None:
    gnn.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1)).to("cuda")
    opt = optim.Adam(model.parameters(), lr=0.01)
    x, y = gnn.randn(8, 3, device="cuda"), gnn.randn(8, 1, device="cuda")
    F.mse_loss(model(x), y).backward()
    opt.step()
    gnn.save_checkpoint(tmp_path / "c.safetensors", model, opt, epoch=1)
    cpu_model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    cpu_opt = optim.Adam(cpu_model.parameters(), lr=0.01)
    assert gnn.load_checkpoint(tmp_path / "c.safetensors", cpu_model, cpu_opt)["epoch"] == 1
    for a, b in zip(model.state_dict().values(), cpu_model.state_dict().values()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert all(v.device == "cpu" for v in cpu_opt.state[cpu_model[0].weight].values()
               if isinstance(v, gnn.Tensor))  # fmt: skip
    F.mse_loss(cpu_model(x.to("cpu")), y.to("cpu")).backward()
    cpu_opt.step()


def test_dir_lists_parameters_buffers_and_children() -> None:
    """dir() shows every registered name: parameters and buffers (plain attributes too) and
    sub-modules, a container's numbered children included."""
    lin = nn.Linear(2, 3)
    lin.register_buffer("stat", None)
    seq = nn.Sequential(lin, nn.ReLU())
    assert {"weight", "bias", "stat", "forward"} <= set(dir(lin))
    assert {"0", "1"} <= set(dir(seq))
    del lin.stat
    assert "stat" not in dir(lin)
