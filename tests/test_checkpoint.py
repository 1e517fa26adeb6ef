"""Checkpoints: a run stopped and resumed from a checkpoint ends with exactly the weights of a
run that never stopped (dropout and shuffling draw from the RNG); the file's contents; errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

import gnn
from gnn import nn, optim
from gnn.backend import get_backend
from gnn.data import DataLoader, TensorDataset
from gnn.optim import lr_scheduler

EPOCHS = 4


def _data() -> TensorDataset:
    rng = np.random.default_rng(42)
    x = rng.standard_normal((24, 5)).astype(np.float32)
    y = (x[:, :1] * 2 - x[:, 1:2]).astype(np.float32)
    return TensorDataset(gnn.tensor(x), gnn.tensor(y))


def _model(batch_norm: bool = False) -> nn.Module:
    if batch_norm:  # buffers (running stats, a 0-d int64 counter) are part of the state
        return nn.Sequential(nn.Linear(5, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 1))
    return nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 1))


SETUPS = {
    "sgd-step": (
        lambda p: optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
        lambda o: lr_scheduler.StepLR(o, step_size=1, gamma=0.7),
    ),
    "adam-cosine": (
        lambda p: optim.Adam(p, lr=0.01, amsgrad=True),
        lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=3, eta_min=1e-4),
    ),
    "adamw-plateau": (
        lambda p: optim.AdamW(p, lr=0.01),
        lambda o: lr_scheduler.ReduceLROnPlateau(o, patience=0, factor=0.5),
    ),
    "rmsprop-lambda": (
        lambda p: optim.RMSprop(p, lr=0.005, momentum=0.5, centered=True),
        lambda o: lr_scheduler.LambdaLR(o, lambda e: 1.0 / (1 + e)),
    ),
}


def _train_epochs(model, opt, sched, loader, epochs) -> None:
    for _ in range(epochs):
        total = 0.0
        for x, y in loader:  # a fresh shuffle each epoch, from gnn's CPU generator
            opt.zero_grad()
            loss = ((model(x) - y) ** 2).mean()  # dropout draws from the same generator
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            total += float(loss)
        if isinstance(sched, lr_scheduler.ReduceLROnPlateau):
            sched.step(total)
        else:
            sched.step()


def _snapshot(model, opt) -> dict[str, np.ndarray]:
    out = {f"model.{k}": v.numpy().copy() for k, v in model.state_dict().items()}
    for i, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            out[f"opt.{i}.{k}"] = np.asarray(v.numpy() if isinstance(v, gnn.Tensor) else v)
    return out


@pytest.mark.parametrize(
    "setup, stop_after, batch_norm",
    [(s, n, False) for s in SETUPS for n in (1, 3)] + [("adam-cosine", 2, True)],
)
def test_resume_is_bit_exact(tmp_path, setup, stop_after, batch_norm) -> None:
    make_opt, make_sched = SETUPS[setup]
    loader = DataLoader(_data(), batch_size=5, shuffle=True)  # 24 samples: no batch of one

    # The run that never stops.
    gnn.manual_seed(0)
    model = _model(batch_norm)
    opt = make_opt(model.parameters())
    sched = make_sched(opt)
    _train_epochs(model, opt, sched, loader, EPOCHS)
    want, want_lr = _snapshot(model, opt), sched.get_last_lr()

    # The same run, stopped after `stop_after` epochs ...
    gnn.manual_seed(0)
    model = _model(batch_norm)
    opt = make_opt(model.parameters())
    sched = make_sched(opt)
    _train_epochs(model, opt, sched, loader, stop_after)
    path = tmp_path / "ckpt.safetensors"
    gnn.save_checkpoint(path, model, opt, sched, epoch=stop_after, extra={"note": setup})
    del model, opt, sched

    # ... and resumed in a fresh "process": other seed, other weights, generator moved on.
    gnn.manual_seed(123)
    get_backend("cpu").rng().random(1000)
    model = _model(batch_norm)
    opt = make_opt(model.parameters())
    sched = make_sched(opt)
    info = gnn.load_checkpoint(path, model, opt, sched)
    assert info == {"epoch": stop_after, "extra": {"note": setup}}
    _train_epochs(model, opt, sched, loader, EPOCHS - stop_after)
    got = _snapshot(model, opt)

    assert set(got) == set(want)
    for k in want:
        assert np.array_equal(got[k], want[k]), f"{setup}: {k} differs after resuming"
    assert sched.get_last_lr() == want_lr


def test_rng_state_survives_json_and_is_not_undone_by_reseeding(tmp_path) -> None:
    be = get_backend("cpu")
    gnn.manual_seed(5)
    be.rng().random(3)
    state = be.get_rng_state()
    assert json.loads(json.dumps(state)) == state  # PCG64's 128-bit integers round-trip
    model = nn.Linear(2, 2)
    gnn.save_checkpoint(tmp_path / "c.safetensors", model)
    want = be.rng().random(4)
    gnn.manual_seed(99)  # a later seed bumps the generation ...
    gnn.load_checkpoint(tmp_path / "c.safetensors", model)
    np.testing.assert_array_equal(be.rng().random(4), want)  # ... and loading wins over it


def test_checkpoint_layout(tmp_path) -> None:
    model = nn.Linear(3, 2)
    opt = optim.Adam(model.parameters(), lr=0.01, betas=(0.8, 0.9))
    sched = lr_scheduler.StepLR(opt, step_size=2)
    model(gnn.randn(4, 3)).sum().backward()
    opt.step()
    path = tmp_path / "c.safetensors"
    gnn.save_checkpoint(path, model, opt, sched, epoch=7)
    tensors = gnn.load(path)
    assert set(tensors) == {
        "model.weight", "model.bias",
        "optimizer.state.0.exp_avg", "optimizer.state.0.exp_avg_sq",
        "optimizer.state.1.exp_avg", "optimizer.state.1.exp_avg_sq",
    }  # fmt: skip
    np.testing.assert_array_equal(tensors["model.weight"].numpy(), model.weight.numpy())
    meta = gnn.io.load_metadata(path)
    record = json.loads(meta["gnn.checkpoint"])
    assert record["epoch"] == 7
    assert record["optimizer"]["class"] == "Adam"
    assert record["optimizer"]["param_groups"][0]["betas"] == [0.8, 0.9]
    assert record["optimizer"]["state"] == {"0": {"step": 1}, "1": {"step": 1}}
    assert record["scheduler"]["class"] == "StepLR"
    assert record["scheduler"]["state"]["last_epoch"] == 0
    assert record["rng"]["cpu"]["bit_generator"] == "PCG64"


def test_checkpoint_errors(tmp_path) -> None:
    model = nn.Linear(3, 2)
    sgd = optim.SGD(model.parameters(), lr=0.1)
    path = tmp_path / "c.safetensors"
    gnn.save_checkpoint(path, model, sgd)
    with pytest.raises(ValueError, match="the checkpoint's optimizer is a SGD, got a Adam"):
        gnn.load_checkpoint(path, model, optim.Adam(model.parameters()))
    with pytest.raises(ValueError, match="holds no scheduler state"):
        gnn.load_checkpoint(path, model, sgd, lr_scheduler.StepLR(sgd, 1))
    with pytest.raises(RuntimeError, match="size mismatch"):
        gnn.load_checkpoint(path, nn.Linear(4, 2))
    weights = tmp_path / "w.safetensors"
    gnn.save(model.state_dict(), weights)
    with pytest.raises(ValueError, match="not a gnn checkpoint"):
        gnn.load_checkpoint(weights, model)
    before = path.read_bytes()
    with pytest.raises(TypeError, match="cannot be stored as JSON"):
        gnn.save_checkpoint(path, model, extra={"f": object()})
    assert path.read_bytes() == before  # a failed save leaves the old checkpoint alone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.safetensors", "w.safetensors"]


def test_load_checkpoint_moves_the_model_to_device(tmp_path) -> None:
    model = nn.Linear(3, 2).double()
    gnn.save_checkpoint(tmp_path / "c.safetensors", model)
    other = nn.Linear(3, 2).double()
    gnn.load_checkpoint(tmp_path / "c.safetensors", other, device="cpu")
    assert other.weight.device == "cpu"
    np.testing.assert_array_equal(other.weight.numpy(), model.weight.numpy())


@pytest.mark.parametrize("broken", ["fsync", "replace"])
def test_checkpoint_write_is_atomic(tmp_path, monkeypatch, broken) -> None:
    """A checkpoint write that fails half way (the disk, the rename) leaves the previous
    checkpoint whole and loadable, and no temp file behind."""
    import os

    gnn.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    path = tmp_path / "c.safetensors"
    gnn.save_checkpoint(path, model, opt, epoch=1)
    before = path.read_bytes()
    model(gnn.randn(5, 3)).sum().backward()
    opt.step()

    def fail(*args):
        raise OSError("disk on fire")

    monkeypatch.setattr(os, broken, fail)
    with pytest.raises(OSError, match="disk on fire"):
        gnn.save_checkpoint(path, model, opt, epoch=2)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]
    fresh = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    assert gnn.load_checkpoint(path, fresh, optim.SGD(fresh.parameters(), lr=0.1))["epoch"] == 1


def _set(path: list, value):
    """A change to the checkpoint record: set record[path[0]][path[1]]... = value."""

    def change(record: dict) -> None:
        target = record
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


MALFORMED = [
    ("record not an object", lambda r: [r], "the record is not a JSON object"),
    ("version", _set(["version"], [1]), r"unsupported checkpoint version \[1\]"),
    ("optimizer state", _set(["optimizer", "state"], 5), "optimizer 'state' must map"),
    ("state index", _set(["optimizer", "state"], {"x": {"step": 1}}), "'state' must map"),
    ("param groups", _set(["optimizer", "param_groups"], {"lr": 1}), "'param_groups' must be"),
    ("group params", _set(["optimizer", "param_groups", 0, "params"], ["a"]), "integer 'params'"),
    ("optimizer class", _set(["optimizer", "class"], None), "'optimizer' must be an object"),
    ("negative lr", _set(["optimizer", "param_groups", 0, "lr"], -1.0), r"lr must be in \(0, inf"),
    ("rng", _set(["rng"], [1, 2]), "'rng' must map device names"),
    ("rng state", _set(["rng", "cpu"], {"bit_generator": "PCG64", "state": 3}), "cpu generator"),
    ("seed", _set(["seed"], "x"), "'seed' must be an integer or null"),
    ("scheduler", _set(["scheduler"], {"class": "StepLR"}), "'scheduler' must be an object"),
]


@pytest.mark.parametrize(
    "change, message", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_malformed_checkpoint_records_fail_clearly_and_change_nothing(tmp_path, change, message):
    """The record is JSON from the file: every part is checked before anything is restored."""
    gnn.manual_seed(0)
    model = nn.Linear(3, 2)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = lr_scheduler.StepLR(opt, step_size=2)
    model(gnn.randn(4, 3)).sum().backward()
    opt.step()
    good = tmp_path / "good.safetensors"
    gnn.save_checkpoint(good, model, opt, sched, epoch=3)
    record = json.loads(gnn.io.load_metadata(good)["gnn.checkpoint"])
    record = change(record) or record  # a change returns a new record, or edits this one
    bad = tmp_path / "bad.safetensors"
    gnn.save(gnn.load(good), bad, metadata={"gnn.checkpoint": json.dumps(record)})

    gnn.manual_seed(7)
    fresh = nn.Linear(3, 2)
    fresh_opt = optim.SGD(fresh.parameters(), lr=0.5)
    fresh_sched = lr_scheduler.StepLR(fresh_opt, step_size=5)
    weights, rng = fresh.weight.numpy().copy(), get_backend("cpu").get_rng_state()
    with pytest.raises(ValueError, match=message) as err:
        gnn.load_checkpoint(bad, fresh, fresh_opt, fresh_sched)
    assert str(bad) in str(err.value) or "load_state_dict" in str(err.value)
    np.testing.assert_array_equal(fresh.weight.numpy(), weights)
    assert fresh_opt.state == {} and fresh_opt.param_groups[0]["lr"] == 0.5
    assert fresh_sched.step_size == 5
    assert get_backend("cpu").get_rng_state() == rng
