"""Callbacks and fit's own guarantees: EarlyStopping restores the best weights, NaN handling,
ModelCheckpoint, CSVLogger, ReduceLROnPlateau, LambdaCallback, History.plot, progress output."""

import csv
import io
import sys

import numpy as np
import pytest

import gnn
from gnn import functional as F
from gnn.layers import Dense, optimizers
from gnn.train import (
    CSVLogger,
    EarlyStopping,
    LambdaCallback,
    ModelCheckpoint,
    ProgbarLogger,
    ReduceLROnPlateau,
    TerminateOnNaN,
)


def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    return x, (x[:, 0] - x[:, 1] > 0).astype(np.float32)


def model():
    gnn.manual_seed(0)
    m = gnn.Sequential(
        Dense(4, activation="tanh", input_shape=(3,)), Dense(1, activation="sigmoid")
    )
    m.compile(
        optimizer=optimizers.SGD(learning_rate=0.3),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    return m


def weights(m):
    return {k: v.numpy().copy() for k, v in m.state_dict().items()}


class Scripted:
    """A LambdaCallback that overwrites val_loss with scripted values and snapshots the weights.

    It runs before EarlyStopping (callbacks are called in order), so the monitor sees the script.
    """

    def __init__(self, values):
        self.values, self.snapshots = list(values), []
        self.callback = LambdaCallback(on_epoch_end=self.on_epoch_end)

    def on_epoch_end(self, epoch, logs):
        logs["val_loss"] = self.values[epoch]
        self.snapshots.append(weights(self.callback.model))


def assert_weights_equal(m, snap):
    now = weights(m)
    assert now.keys() == snap.keys()
    for k in now:
        np.testing.assert_array_equal(now[k], snap[k])


def test_early_stopping_restores_best_when_stopped_early():
    x, y = data()
    m = model()
    script = Scripted([3.0, 1.0, 2.0, 0.5, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0])
    stop = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    h = m.fit(x, y, epochs=10, verbose=0, callbacks=[script.callback, stop])
    assert len(h.history["loss"]) == 6  # best at epoch index 3, two more without improvement
    assert stop.best_epoch == 3 and stop.stopped_epoch == 5
    assert not np.array_equal(weights(m)["0.weight"], script.snapshots[-1]["0.weight"])
    assert_weights_equal(m, script.snapshots[3])


def test_early_stopping_restores_best_when_epochs_run_out():
    x, y = data()
    m = model()
    script = Scripted([3.0, 1.0, 2.0, 2.5])
    stop = EarlyStopping(patience=10, restore_best_weights=True)
    m.fit(x, y, epochs=4, verbose=0, callbacks=[script.callback, stop])
    assert stop.stopped_epoch == -1  # never stopped early
    assert_weights_equal(m, script.snapshots[1])


def test_nan_is_never_best():
    x, y = data()
    m = model()
    script = Scripted([2.0, float("nan"), 1.5, float("inf")])
    stop = EarlyStopping(patience=10, restore_best_weights=True)
    m.fit(x, y, epochs=4, verbose=0, callbacks=[script.callback, stop])
    assert stop.best == 1.5
    assert_weights_equal(m, script.snapshots[2])


def test_mode_max_for_accuracy_and_min_delta():
    stop = EarlyStopping(monitor="val_accuracy")
    assert stop.tracker.mode == "max"
    stop = EarlyStopping(monitor="val_loss", min_delta=0.5)
    stop.tracker.best = 1.0
    assert not stop.tracker.improved(0.6) and stop.tracker.improved(0.4)


def test_fit_stops_on_nan_loss_before_the_bad_update(capsys):
    x, y = data(48)
    calls = {"n": 0}

    def flaky_loss(y_true, y_pred):
        calls["n"] += 1
        loss = F.mse_loss(y_pred, y_true)
        return loss * float("nan") if calls["n"] == 5 else loss

    gnn.manual_seed(0)
    m = gnn.Sequential(Dense(1, activation="sigmoid", input_shape=(3,)))
    m.compile(optimizer="sgd", loss=flaky_loss)
    snaps = []
    cb = LambdaCallback(on_train_batch_end=lambda b, logs: snaps.append(weights(m)))
    stop = EarlyStopping(monitor="loss", patience=5, restore_best_weights=True)
    h = m.fit(x, y, epochs=5, batch_size=16, shuffle=False, verbose=0, callbacks=[cb, stop])
    err = capsys.readouterr().err
    assert "stopped at epoch 2, batch 2 of 3" in err and "nan" in err
    assert len(snaps) == 4  # batches 1-4 stepped; the 5th (NaN) did not
    assert np.isnan(h.history["loss"][-1]) and len(h.history["loss"]) == 2
    assert all(np.isfinite(v).all() for v in weights(m).values())
    assert stop.best_epoch == 0  # the NaN epoch was not taken as best
    assert_weights_equal(m, snaps[2])  # restored to the end of epoch 1


def test_terminate_on_nan_callback():
    cb = TerminateOnNaN()

    class Dummy:
        stop_training = False

    cb.set_model(Dummy())
    cb.on_train_batch_end(0, {"loss": float("inf")})
    assert cb.model.stop_training


def test_model_checkpoint_best_only(tmp_path):
    x, y = data()
    m = model()
    script = Scripted([3.0, 1.0, 2.0, float("nan"), 0.5])
    path = tmp_path / "best.safetensors"
    ckpt = ModelCheckpoint(path, monitor="val_loss", save_best_only=True)
    m.fit(x, y, epochs=5, verbose=0, callbacks=[script.callback, ckpt])
    assert len(ckpt.saved) == 3  # epochs 1, 2 and 5 improved
    from safetensors.numpy import load_file

    saved = load_file(str(path))
    for k, v in script.snapshots[4].items():
        np.testing.assert_array_equal(saved[k], v)
    assert [p.name for p in tmp_path.iterdir()] == ["best.safetensors"]  # no temp files left


def test_model_checkpoint_every_epoch_with_format(tmp_path):
    x, y = data()
    ckpt = ModelCheckpoint(str(tmp_path / "w-{epoch:02d}.safetensors"))
    model().fit(x, y, epochs=3, verbose=0, callbacks=[ckpt])
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"w-0{i}.safetensors" for i in (1, 2, 3)]


def test_csv_logger_matches_history(tmp_path):
    x, y = data()
    path = tmp_path / "log.csv"
    h = model().fit(x, y, epochs=3, verbose=0, validation_split=0.25, callbacks=[CSVLogger(path)])
    rows = list(csv.DictReader(open(path)))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose([float(r[key]) for r in rows], h.history[key], rtol=1e-6)


def test_reduce_lr_on_plateau():
    x, y = data()
    m = model()
    script = Scripted([1.0, 1.0, 1.0, 1.0, 0.5, 0.5])
    red = ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, min_lr=0.01)
    h = m.fit(x, y, epochs=6, verbose=0, callbacks=[script.callback, red])
    # "lr" is the rate each epoch trained with. No improvement at epochs 1, 2 -> halved after
    # epoch 2; epoch 3 waits 1; epoch 4 improves; epoch 5 waits 1.
    np.testing.assert_allclose(h.history["lr"], [0.3, 0.3, 0.3, 0.15, 0.15, 0.15])
    assert m.optimizer.param_groups[0]["lr"] == pytest.approx(0.15)


def test_scheduler_is_stepped_once_per_epoch_after_the_optimizer():
    x, y = data(32)
    m = model()
    events = []
    opt = m.optimizer
    real_step = opt.step
    opt.step = lambda: (events.append("opt"), real_step())

    class Sched:
        def step(self):
            events.append("sched")

    m.fit(x, y, epochs=2, batch_size=16, verbose=0, scheduler=Sched())
    assert events == ["opt", "opt", "sched", "opt", "opt", "sched"]


def test_lambda_callback_hooks_and_unknown():
    seen = []
    cb = LambdaCallback(
        on_train_begin=lambda logs: seen.append("begin"),
        on_epoch_end=lambda e, logs: seen.append(e),
        on_train_end=lambda logs: seen.append("end"),
    )
    model().fit(*data(), epochs=2, verbose=0, callbacks=[cb])
    assert seen == ["begin", 0, 1, "end"]
    with pytest.raises(ValueError, match="unknown hook"):
        LambdaCallback(on_epoch_ending=print)


def test_history_plot_png(tmp_path):
    pytest.importorskip("matplotlib")
    h = model().fit(*data(), epochs=3, verbose=0, validation_split=0.25)
    out = h.plot(tmp_path / "curves.png")
    assert open(out, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_history_plot_without_matplotlib(monkeypatch, tmp_path):
    h = model().fit(*data(), epochs=1, verbose=0)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    with pytest.raises(ImportError, match=r"pip install 'gnn\[plot\]'"):
        h.plot(tmp_path / "x.png")


def test_progress_one_line_per_epoch_when_not_a_terminal():
    stream = io.StringIO()  # not a tty: no bar, one line per epoch
    bar = ProgbarLogger(verbose=1, stream=stream)
    model().fit(*data(), epochs=3, verbose=0, callbacks=[bar])
    lines = stream.getvalue().strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("Epoch 1/3") and "loss:" in lines[0]


def test_progress_bar_on_a_terminal():
    pytest.importorskip("tqdm")

    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    model().fit(*data(), epochs=2, verbose=0, callbacks=[ProgbarLogger(verbose=1, stream=stream)])
    text = stream.getvalue()
    assert "Epoch 1/2" in text and "Epoch 2/2" in text
    assert "\r" in text  # tqdm redraws the line in place


def test_early_stopping_warns_on_missing_monitor():
    with pytest.warns(UserWarning, match="'val_loss' is not in the logs"):
        model().fit(*data(), epochs=2, verbose=0, callbacks=[EarlyStopping()])


def test_nan_stop_keeps_history_aligned_and_checkpoint_clean(tmp_path, capsys):
    x, y = data(48)
    calls = {"n": 0}

    def flaky_loss(y_true, y_pred):  # NaN from the 8th batch on (epoch 3, batch 2)
        calls["n"] += 1
        loss = F.mse_loss(y_pred, y_true)
        return loss * float("nan") if calls["n"] >= 8 else loss

    gnn.manual_seed(0)
    m = gnn.Sequential(Dense(1, activation="sigmoid", input_shape=(3,)))
    m.compile(optimizer="sgd", loss=flaky_loss, metrics=["accuracy"])
    ends = []
    cb = LambdaCallback(on_epoch_end=lambda e, logs: ends.append(weights(m)))
    path = tmp_path / "best.safetensors"
    ckpt = ModelCheckpoint(path, monitor="loss", save_best_only=True)
    h = m.fit(x, y, epochs=5, batch_size=16, shuffle=False, verbose=0, callbacks=[cb, ckpt])
    assert "stopped at epoch 3, batch 2 of 3" in capsys.readouterr().err
    assert h.epoch == [0, 1, 2]
    assert all(len(v) == 3 for v in h.history.values())  # NaN filled in for the stopped epoch
    assert np.isnan(h.history["loss"][2]) and np.isnan(h.history["accuracy"][2])
    from safetensors.numpy import load_file

    saved = load_file(str(path))
    for k, v in ends[1].items():  # the file holds epoch 2's weights, never the NaN epoch's
        np.testing.assert_array_equal(saved[k], v)
    if __import__("importlib").util.find_spec("matplotlib"):
        h.plot(tmp_path / "curves.png")  # lists of equal length plot fine


def test_progress_bar_on_a_terminal_that_reports_no_size():
    pytest.importorskip("tqdm")
    pty = pytest.importorskip("pty")
    import os

    master, slave = pty.openpty()  # a fresh pty reports 0 columns and 0 lines
    try:
        if os.get_terminal_size(slave) != (0, 0):
            pytest.skip("this pty has a size")
        with os.fdopen(slave, "w", closefd=False) as stream:
            model().fit(
                *data(), epochs=2, verbose=0, callbacks=[ProgbarLogger(verbose=1, stream=stream)]
            )
        import select

        chunks = []
        # The kernel moves what the slave wrote to the master asynchronously and in pieces:
        # read until nothing more arrives for half a second.
        while select.select([master], [], [], 0.5)[0]:
            chunk = os.read(master, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
        text = b"".join(chunks).decode("utf-8", "replace")
    finally:
        os.close(slave)
        os.close(master)
    assert "Epoch 1/2" in text and "Epoch 2/2" in text and "100%" in text


def test_model_checkpoint_write_failure_keeps_the_previous_file(tmp_path, monkeypatch):
    import os

    x, y = data()
    m = model()
    path = tmp_path / "w.safetensors"
    snaps = []
    cb = LambdaCallback(on_epoch_end=lambda e, logs: snaps.append(weights(m)))
    real_replace = os.replace
    calls = {"n": 0}

    def failing_replace(src, dst):
        calls["n"] += 1
        if calls["n"] == 2:  # the second epoch's write dies at the rename
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        m.fit(x, y, epochs=3, verbose=0, callbacks=[cb, ModelCheckpoint(path, monitor="loss")])
    from safetensors.numpy import load_file

    saved = load_file(str(path))  # still epoch 1's file, whole
    for k, v in snaps[0].items():
        np.testing.assert_array_equal(saved[k], v)
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]  # no temp file left


def test_terminate_on_nan_stops_fit_when_fit_itself_does_not():
    x, y = data(48)
    calls = {"n": 0}

    def flaky_loss(y_true, y_pred):
        calls["n"] += 1
        loss = F.mse_loss(y_pred, y_true)
        return loss * float("nan") if calls["n"] == 2 else loss

    gnn.manual_seed(0)
    m = gnn.Sequential(Dense(1, activation="sigmoid", input_shape=(3,)))
    m.compile(optimizer="sgd", loss=flaky_loss)
    seen = []
    cb = LambdaCallback(on_train_batch_end=lambda b, logs: seen.append(b))
    m.fit(
        x, y, epochs=3, batch_size=16, verbose=0, stop_on_nan=False,
        callbacks=[cb, TerminateOnNaN()],
    )  # fmt: skip
    assert seen == [0, 1]  # stopped right after the NaN batch, inside epoch 1


def test_a_callback_hears_of_a_nan_stop_and_its_report_is_a_callback(capsys):
    x, y = data(48)

    def nan_from_the_fourth(y_true, y_pred):
        nan_from_the_fourth.n += 1
        loss = F.mse_loss(y_pred, y_true)
        return loss * float("nan") if nan_from_the_fourth.n >= 4 else loss

    nan_from_the_fourth.n = 0
    heard = []

    class Listener(gnn.callbacks.Callback):
        def on_nonfinite_loss(self, epoch, batch, loss):
            heard.append((epoch, batch, np.isnan(loss)))

    gnn.manual_seed(0)
    m = gnn.Sequential(Dense(1, activation="sigmoid", input_shape=(3,)))
    m.compile(optimizer="sgd", loss=nan_from_the_fourth)
    h = m.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0, callbacks=[Listener()])
    assert heard == [(1, 0, True)]
    assert "stopped at epoch 2, batch 1 of 3" in capsys.readouterr().err
    assert len(h.history["loss"]) == 2 and np.isnan(h.history["loss"][1])
    nan_from_the_fourth.n = 0
    m.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0, stop_on_nan=False)
    assert capsys.readouterr().err == ""  # no stop, so no report


def test_a_callback_that_sets_the_learning_rate_gets_it_logged():
    x, y = data(32)

    class Halving(gnn.callbacks.Callback):
        sets_learning_rate = True  # what fit reads, not the class's name

        def on_epoch_begin(self, epoch, logs=None):
            for g in self.model.optimizer.param_groups:
                g["lr"] = 0.4 / 2**epoch

    h = model().fit(x, y, epochs=3, verbose=0, callbacks=[Halving()])
    assert h.history["lr"] == [0.4, 0.2, 0.1]
    assert "lr" not in model().fit(x, y, epochs=1, verbose=0).history


def test_checkpoints_of_a_wrapped_module_keep_its_key_names(tmp_path):
    x, y = data(32)
    gnn.manual_seed(0)
    net = gnn.nn.Sequential(gnn.nn.Linear(3, 1), gnn.nn.Sigmoid())
    model = gnn.Model(net)
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    path = tmp_path / "w.safetensors"
    model.fit(x, y, epochs=2, verbose=0, callbacks=[ModelCheckpoint(path)])
    saved = gnn.load(str(path))
    assert sorted(saved) == ["0.bias", "0.weight"]
    np.testing.assert_array_equal(saved["0.weight"].numpy(), net[0].weight.numpy())
