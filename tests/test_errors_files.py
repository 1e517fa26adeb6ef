"""Issue 17: hostile weights files and checkpoints, and the debris of killed saves."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import gnn
from gnn import nn, optim
from gnn.io import CHECKPOINT_KEY, load_checkpoint, save_checkpoint
from gnn.optim import lr_scheduler

# ---- hostile headers ---------------------------------------------------------------------------


def _craft(path, header: dict, data: bytes = b"") -> str:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return str(path)


def _entry(shape, begin=0, end=0, dtype="F32"):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": [begin, end]}


@pytest.mark.parametrize(
    "header, data, message",
    [
        ({"a": _entry([0, 2**63])}, b"", "too large for an array"),
        ({"a": _entry([0, 2**64 + 5])}, b"", "too large for an array"),
        ({"a": _entry([0, 2**40, 2**40, 2**40])}, b"", "too large for an array"),
        ({"a": _entry([1] * 70, 0, 4)}, bytes(4), "70 dimensions"),
        ({"a": _entry([0] * 70)}, b"", "70 dimensions"),
    ],
    ids=["zero-size 2**63", "zero-size 2**64", "zero-size product", "70 dims", "70 dims empty"],
)
def test_hostile_shapes_are_value_errors_naming_the_file(tmp_path, header, data, message):
    path = _craft(tmp_path / "w.safetensors", header, data)
    with pytest.raises(ValueError, match=message) as info:
        gnn.load(path)
    assert path in str(info.value)


def test_safetensors_own_errors_become_value_errors_naming_the_file(tmp_path, monkeypatch):
    from safetensors import SafetensorError

    path = str(tmp_path / "w.safetensors")
    gnn.save({"a": np.zeros(3, np.float32)}, path)

    class Broken:
        def __init__(self, *args, **kwargs):
            raise SafetensorError("Error while deserializing header: something")

    import safetensors

    monkeypatch.setattr(safetensors, "safe_open", Broken)
    with pytest.raises(ValueError, match="not a valid safetensors file: Error while") as info:
        gnn.load(path)
    assert path in str(info.value)


def test_zero_size_tensors_still_load(tmp_path):
    path = str(tmp_path / "w.safetensors")
    gnn.save({"a": np.zeros((0, 5), np.float32), "b": np.ones(2, np.float32)}, path)
    out = gnn.load(path)
    assert out["a"].shape == (0, 5) and out["b"].shape == (2,)


# ---- stale temp files --------------------------------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid  # exited and reaped: no process has this id now (barring reuse)


def test_next_save_removes_temp_files_of_killed_saves_and_nothing_else(tmp_path):
    target = tmp_path / "w.safetensors"
    dead = _dead_pid()
    stale = tmp_path / f".w.safetensors.{dead}.0123abcd.tmp"
    live = tmp_path / f".w.safetensors.{os.getppid()}.0123abcd.tmp"  # a live writer's
    other_target = tmp_path / f".x.safetensors.{dead}.0123abcd.tmp"
    lookalikes = [
        tmp_path / f".w.safetensors.{dead}.0123abcd.tmp.keep",
        tmp_path / f".w.safetensors.{dead}.XYZ.tmp",
        tmp_path / f"w.safetensors.{dead}.0123abcd.tmp",
        tmp_path / "notes.tmp",
    ]
    for p in [stale, live, other_target, *lookalikes]:
        p.write_bytes(b"partial")
    gnn.save({"a": np.zeros(2, np.float32)}, target)
    assert not stale.exists()
    for p in [live, other_target, *lookalikes]:
        assert p.exists(), p.name
    assert gnn.load(target)["a"].shape == (2,)


def test_checkpoint_save_cleans_stale_temps_too(tmp_path):
    target = tmp_path / "c.ckpt"
    stale = tmp_path / f".c.ckpt.{_dead_pid()}.deadbeef.tmp"
    stale.write_bytes(b"x")
    save_checkpoint(target, nn.Linear(2, 1))
    assert not stale.exists() and target.exists()


# ---- checkpoint validation ---------------------------------------------------------------------


def _setup(kind="adam", sched="step"):
    gnn.manual_seed(0)
    model = nn.Linear(3, 2)
    if kind == "adam":
        opt = optim.Adam(model.parameters(), lr=0.01)
    elif kind == "rmsprop":
        opt = optim.RMSprop(model.parameters(), lr=0.01, momentum=0.9)
    else:
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    if sched == "step":
        scheduler = lr_scheduler.StepLR(opt, step_size=2)
    elif sched == "plateau":
        scheduler = lr_scheduler.ReduceLROnPlateau(opt)
    else:
        scheduler = lr_scheduler.CosineAnnealingLR(opt, T_max=5)
    return model, opt, scheduler


def _train_one(model, opt):
    opt.zero_grad()
    (model(gnn.ones(4, 3)) ** 2).sum().backward()
    opt.step()


def _saved(tmp_path, kind="adam", sched="step"):
    model, opt, scheduler = _setup(kind, sched)
    _train_one(model, opt)
    path = tmp_path / "c.ckpt"
    save_checkpoint(path, model, opt, scheduler, epoch=1)
    return path


def _rewrite(path, edit_record=None, edit_arrays=None):
    arrays = load_file(str(path))
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        meta = dict(f.metadata())
    record = json.loads(meta[CHECKPOINT_KEY])
    if edit_record:
        edit_record(record)
    if edit_arrays:
        edit_arrays(arrays)
    meta[CHECKPOINT_KEY] = json.dumps(record)
    save_file(arrays, str(path), metadata=meta)


def _opt_state(r):
    return r["optimizer"]["state"]["0"]


def _group(r):
    return r["optimizer"]["param_groups"][0]


def _sched(r):
    return r["scheduler"]["state"]


BAD_RECORDS = {
    "step missing": (lambda r: _opt_state(r).pop("step"), "lacks 'step'"),
    "step string": (lambda r: _opt_state(r).update(step="3"), "'step' must be an integer"),
    "step negative": (lambda r: _opt_state(r).update(step=-1), "'step' must be an integer"),
    "step float": (lambda r: _opt_state(r).update(step=1.5), "'step' must be an integer"),
    "lr inf": (lambda r: _group(r).update(lr=float("inf")), r"lr must be in \(0, inf\)"),
    "lr string": (lambda r: _group(r).update(lr="fast"), "lr must be a number"),
    "betas triple": (lambda r: _group(r).update(betas=[0.9, 0.9, 0.9]), "betas must be a pair"),
    "eps missing": (lambda r: _group(r).pop("eps") and _group(r).update(eps=None), "eps"),
    "amsgrad string": (lambda r: _group(r).update(amsgrad="yes"), "amsgrad must be true"),
    "amsgrad without state": (lambda r: _group(r).update(amsgrad=True), "max_exp_avg_sq"),
    "groups not list": (lambda r: r["optimizer"].update(param_groups=[{"params": [0, 1]}] * 2),
                        "2 param groups saved"),
    "sched last_epoch str": (lambda r: _sched(r).update(last_epoch="1"), "last_epoch must be"),
    "sched last_epoch -5": (lambda r: _sched(r).update(last_epoch=-5), "last_epoch must be"),
    "sched base_lrs short": (lambda r: _sched(r).update(base_lrs=[]), "base_lrs must be a list"),
    "sched base_lrs nan": (lambda r: _sched(r).update(base_lrs=[float("nan")]), "base_lrs"),
    "sched step_size 0": (lambda r: _sched(r).update(step_size=0), "step_size must be >= 1"),
    "sched gamma str": (lambda r: _sched(r).update(gamma="x"), "gamma must be a number"),
    "sched missing key": (lambda r: _sched(r).pop("base_lrs"), "lacks 'base_lrs'"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(BAD_RECORDS))
def test_load_checkpoint_validates_optimizer_and_scheduler_state(tmp_path, name):
    edit, message = BAD_RECORDS[name]
    path = _saved(tmp_path)
    _rewrite(path, edit_record=edit)
    model, opt, scheduler = _setup()
    before_w = model.weight.numpy().copy()
    before_lr = opt.param_groups[0]["lr"]
    with pytest.raises(ValueError, match=message) as info:
        load_checkpoint(path, model, opt, scheduler)
    assert str(path) in str(info.value)
    # nothing changed
    np.testing.assert_array_equal(model.weight.numpy(), before_w)
    assert opt.param_groups[0]["lr"] == before_lr and not opt.state
    assert scheduler.last_epoch == 0


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda a: a.update({"optimizer.state.0.exp_avg": np.zeros((7,), np.float32)}), "shape"),
        (lambda a: a.update({"optimizer.state.0.exp_avg": np.zeros((2, 3), np.int32)}), "dtype"),
        (lambda a: a.pop("optimizer.state.0.exp_avg_sq"), "lacks 'exp_avg_sq'"),
        (lambda a: a.update({"model.weight": np.zeros((2, 3), np.complex64)}), "not supported"),
        (lambda a: a.update({"model.weight": np.zeros((3, 3), np.float32)}), "size mismatch"),
    ],
    ids=["state shape", "state int dtype", "state key missing", "model complex", "model shape"],
)
def test_load_checkpoint_validates_arrays_and_names_the_file(tmp_path, edit, message):
    path = _saved(tmp_path)
    _rewrite(path, edit_arrays=edit)
    model, opt, scheduler = _setup()
    before = model.weight.numpy().copy()
    with pytest.raises((ValueError, RuntimeError), match=message) as info:
        load_checkpoint(path, model, opt, scheduler)
    assert str(path) in str(info.value)
    np.testing.assert_array_equal(model.weight.numpy(), before)


@pytest.mark.parametrize("kind", ["adam", "rmsprop", "sgd"])
@pytest.mark.parametrize("sched", ["step", "plateau", "cosine"])
def test_a_checkpoint_that_loads_steps(tmp_path, kind, sched):
    path = _saved(tmp_path, kind, sched)
    model, opt, scheduler = _setup(kind, sched)
    load_checkpoint(path, model, opt, scheduler)
    _train_one(model, opt)
    scheduler.step(1.0) if sched == "plateau" else scheduler.step()
    assert np.isfinite(model.weight.numpy()).all()


def test_rmsprop_state_without_momentum_buffer_is_refused(tmp_path):
    path = _saved(tmp_path, "rmsprop")
    _rewrite(path, edit_arrays=lambda a: a.pop("optimizer.state.0.momentum_buffer"))
    model, opt, scheduler = _setup("rmsprop")
    with pytest.raises(ValueError, match="lacks 'momentum_buffer'"):
        load_checkpoint(path, model, opt, scheduler)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda s: s.update(mode="sideways"), "'min' or 'max'"),
        (lambda s: s.update(factor=5.0), r"factor must be in \(0, 1\)"),
        (lambda s: s.update(num_bad_epochs=-3), "an integer >= 0"),
        (lambda s: s.update(min_lrs=[-1.0]), "min_lrs"),
    ],
)
def test_plateau_state_is_checked(tmp_path, edit, message):
    path = _saved(tmp_path, "adam", "plateau")
    _rewrite(path, edit_record=lambda r: edit(_sched(r)))
    model, opt, scheduler = _setup("adam", "plateau")
    with pytest.raises(ValueError, match=message):
        load_checkpoint(path, model, opt, scheduler)


def test_scheduler_load_state_dict_checks_what_it_is_given():
    _, _, scheduler = _setup()
    scheduler.load_state_dict({"last_epoch": 3})  # a partial state still loads, as before
    assert scheduler.last_epoch == 3
    with pytest.raises(ValueError, match="last_epoch must be an integer"):
        scheduler.load_state_dict({"last_epoch": "3"})
    with pytest.raises(ValueError, match="step_size must be >= 1"):
        scheduler.load_state_dict({"step_size": 0})
    assert scheduler.last_epoch == 3 and scheduler.step_size == 2


def test_optimizer_load_state_dict_refuses_state_that_would_fail_at_step():
    model, opt, _ = _setup("adam")
    _train_one(model, opt)
    sd = opt.state_dict()
    del sd["state"][0]["exp_avg"]
    fresh_model, fresh, _ = _setup("adam")
    with pytest.raises(ValueError, match="lacks 'exp_avg'"):
        fresh.load_state_dict(sd)
    assert not fresh.state
