"""Autocast and GradScaler against PyTorch: torch.autocast("cpu", torch.bfloat16) forward and
backward on an MLP, a CNN and a transformer layer; GradScaler's scale sequence and skipped steps
over a run with injected infs."""

from __future__ import annotations

import numpy as np
import pytest

import gnn
from gnn import nn

torch = pytest.importorskip("torch")
pytest.importorskip("ml_dtypes")

# bfloat16 keeps 8 significant bits (relative step 2**-8 = 0.0039); a few layers of roundings
# that fall differently (softmax and norms in float32 here, in bfloat16 in PyTorch's CPU
# autocast) stay within a few steps of the output's scale.
BF16_TOL = 3e-2


def _mlp(lib):
    return lib.nn.Sequential(
        lib.nn.Linear(20, 64), lib.nn.ReLU(), lib.nn.Linear(64, 64), lib.nn.GELU(),
        lib.nn.Linear(64, 10),
    )  # fmt: skip


def _cnn(lib):
    return lib.nn.Sequential(
        lib.nn.Conv2d(3, 8, 3, padding=1), lib.nn.BatchNorm2d(8), lib.nn.ReLU(),
        lib.nn.MaxPool2d(2), lib.nn.Conv2d(8, 8, 3), lib.nn.ReLU(), lib.nn.Flatten(),
        lib.nn.Linear(8 * 2 * 2, 10),
    )  # fmt: skip


def _transformer(lib):
    layer = lib.nn.TransformerEncoderLayer(
        d_model=32, nhead=4, dim_feedforward=64, dropout=0.0, batch_first=True
    )
    return lib.nn.Sequential(layer, lib.nn.LayerNorm(32), lib.nn.Linear(32, 7))


MODELS = {
    "mlp": (_mlp, (16, 20)),
    "cnn": (_cnn, (4, 3, 8, 8)),
    "transformer": (_transformer, (3, 6, 32)),
}


def _pair(name: str):
    make, shape = MODELS[name]
    torch.manual_seed(0)
    theirs = make(torch)
    ours = make(gnn)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    return theirs, ours, x


def _close(got: np.ndarray, want: np.ndarray, what: str) -> float:
    scale = float(np.abs(want).max())
    diff = float(np.abs(got - want).max())
    assert diff <= BF16_TOL * max(scale, 1.0), f"{what}: max |diff| {diff} at scale {scale}"
    return diff


@pytest.mark.parametrize("name", sorted(MODELS))
def test_autocast_forward_and_backward_match_torch(name) -> None:
    theirs, ours, x = _pair(name)
    labels = np.arange(x.shape[0]) % 7
    with torch.autocast("cpu", dtype=torch.bfloat16):
        yt = theirs(torch.from_numpy(x))
        flat_t = yt.reshape(-1, yt.shape[-1])
        lt = torch.nn.functional.cross_entropy(
            flat_t[:, :7], torch.from_numpy(np.resize(labels, flat_t.shape[0]))
        )
    with gnn.autocast("cpu", dtype=gnn.bfloat16):
        yg = ours(gnn.tensor(x))
        flat = yg.reshape(-1, yg.shape[-1])
        lg = gnn.nn.functional.cross_entropy(
            flat[:, :7], gnn.tensor(np.resize(labels, flat.shape[0]))
        )
    assert yt.dtype == torch.bfloat16 and yg.dtype == gnn.bfloat16
    assert lg.dtype == np.float32  # losses run in float32
    _close(yg.float().numpy(), yt.float().detach().numpy(), f"{name} output")
    lt.backward()
    lg.backward()
    want = {k: p.grad.numpy() for k, p in theirs.named_parameters()}
    for k, p in ours.named_parameters():
        assert p.dtype == np.float32 and p.grad.dtype == np.float32, k  # master weights
        _close(p.grad.numpy(), want[k], f"{name} grad {k}")


def test_autocast_changes_only_the_listed_ops() -> None:
    a = gnn.randn(4, 8)
    w = gnn.randn(3, 8, requires_grad=True)
    with gnn.autocast("cpu"):
        y = gnn.nn.functional.linear(a, w)
        assert y.dtype == gnn.bfloat16
        assert gnn.softmax(y, -1).dtype == np.float32
        assert gnn.nn.functional.layer_norm(y, (3,)).dtype == np.float32
        assert y.sum().dtype == np.float32 and y.mean().dtype == np.float32
        assert gnn.relu(y).dtype == gnn.bfloat16  # elementwise ops keep their input's dtype
        assert gnn.matmul(a.double(), a.double().t()).dtype == np.float64  # float64 is left alone
        with gnn.autocast("cpu", enabled=False):
            assert gnn.nn.functional.linear(a, w).dtype == np.float32
        with gnn.autocast("cpu", dtype=gnn.float16):
            assert gnn.nn.functional.linear(a, w).dtype == np.float16
    assert gnn.nn.functional.linear(a, w).dtype == np.float32
    assert not gnn.amp.is_autocast_enabled("cpu")


def test_autocast_decorator_and_errors() -> None:
    @gnn.autocast("cpu")
    def f(x):
        assert gnn.amp.is_autocast_enabled("cpu")
        return gnn.matmul(x, x)

    assert f(gnn.randn(3, 3)).dtype == gnn.bfloat16
    assert not gnn.amp.is_autocast_enabled("cpu")
    with pytest.raises(ValueError, match="device_type"):
        gnn.autocast("tpu")
    with pytest.raises(ValueError, match="float16 or bfloat16"):
        gnn.autocast("cpu", dtype=gnn.float64)
    with pytest.raises(ValueError, match="bfloat16 on CUDA"):
        gnn.autocast("cuda", dtype=gnn.bfloat16)


# ---- GradScaler ---------------------------------------------------------------------------------


def _scaler_run(lib, model, scaler, steps, inject, clip: bool):
    opt = lib.optim.SGD(model.parameters(), lr=0.05)
    rng = np.random.default_rng(3)
    scales, skipped = [], []
    for step in range(steps):
        x = rng.standard_normal((8, 5)).astype(np.float32)
        y = rng.standard_normal((8, 2)).astype(np.float32)
        opt.zero_grad()
        out = model(lib.tensor(x))
        loss = lib.nn.functional.mse_loss(out, lib.tensor(y))
        scaler.scale(loss).backward()
        if step in inject:  # a gradient overflowed (inf) or went NaN
            p = next(iter(model.parameters()))
            bad = np.inf if step % 2 else np.nan
            if lib is torch:
                p.grad[0, 0] = bad
            else:
                p.grad.array[0, 0] = bad
        before = [
            np.array(p.detach().numpy() if lib is torch else p.numpy()) for p in model.parameters()
        ]
        if clip:
            scaler.unscale_(opt)
            params = list(model.parameters())
            if lib is torch:
                torch.nn.utils.clip_grad_norm_(params, 0.5)
            else:
                gnn.nn.utils.clip_grad_norm_(params, 0.5)
        scaler.step(opt)
        scaler.update()
        after = [p.detach().numpy() if lib is torch else p.numpy() for p in model.parameters()]
        skipped.append(all(np.array_equal(a, b) for a, b in zip(before, after)))
        scales.append(scaler.get_scale())
    return (
        scales,
        skipped,
        [p.detach().numpy() if lib is torch else p.numpy() for p in model.parameters()],
    )


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # clipping NaN
@pytest.mark.parametrize("clip", [False, True])
def test_grad_scaler_matches_torch_with_injected_infs(clip) -> None:
    torch.manual_seed(1)
    theirs = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    ours = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 2))
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    inject = {2, 3, 9, 10, 11, 15}
    kw = {"init_scale": 2.0**14, "growth_interval": 3}
    t_scales, t_skipped, t_params = _scaler_run(
        torch, theirs, torch.amp.GradScaler("cpu", **kw), 20, inject, clip
    )
    g_scales, g_skipped, g_params = _scaler_run(
        gnn, ours, gnn.amp.GradScaler("cpu", **kw), 20, inject, clip
    )
    assert g_scales == t_scales
    assert g_skipped == t_skipped
    assert [i for i, s in enumerate(g_skipped) if s] == sorted(inject)  # exactly those steps
    assert len(set(g_scales)) > 3  # it both grew and backed off
    for a, b in zip(g_params, t_params):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_grad_scaler_defaults_state_dict_and_misuse() -> None:
    s = gnn.amp.GradScaler()
    t = torch.amp.GradScaler("cpu")
    assert s.get_scale() == t.get_scale() == 65536.0
    assert s.get_growth_interval() == 2000 and s.get_backoff_factor() == 0.5
    assert s.get_growth_factor() == 2.0
    ts = t.state_dict()
    ours = s.state_dict()
    assert set(ours) == set(ts)
    assert all(float(ours[k]) == float(ts[k]) for k in ts)
    p = gnn.nn.Parameter(gnn.ones(3))
    opt = gnn.optim.SGD([p], lr=1.0)
    s.scale((p * 2).sum()).backward()
    s.unscale_(opt)
    np.testing.assert_array_equal(p.grad.numpy(), np.full(3, 2.0))  # 65536 * 2 / 65536
    with pytest.raises(RuntimeError, match="already been called"):
        s.unscale_(opt)
    s.step(opt)
    with pytest.raises(RuntimeError, match="already been called"):
        s.step(opt)
    s.update()
    with pytest.raises(RuntimeError, match="no inf checks"):
        s.update()
    s2 = gnn.amp.GradScaler(init_scale=8.0)
    s2.load_state_dict({**s.state_dict(), "_growth_tracker": 5})
    assert s2.get_scale() == 65536.0 and s2.state_dict()["_growth_tracker"] == 5
    off = gnn.amp.GradScaler(enabled=False)
    loss = (p * 3).sum()
    assert off.scale(loss) is loss and off.get_scale() == 1.0 and off.state_dict() == {}
    with pytest.raises(ValueError, match="growth_factor"):
        gnn.amp.GradScaler(growth_factor=0.5)
    half = gnn.nn.Parameter(gnn.ones(2, dtype=gnn.float16))
    (half * 1).sum().backward()
    with pytest.raises(ValueError, match="float16/bfloat16 gradient"):
        gnn.amp.GradScaler().unscale_(gnn.optim.SGD([half], lr=1.0))
