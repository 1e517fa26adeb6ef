"""The tutorial scripts in examples/ run (quick mode), and the gnn.examples recipes really learn."""

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
# every tutorial script, the strings its output must contain, and whether the test runs it in
# full (the numbers the tutorials quote) or in quick mode (GNN_EXAMPLES_QUICK=1: a few steps)
SCRIPTS = {
    "xor_from_scratch.py": (("nn.Module: loss", "accuracy 100%"), "full"),
    "weights_by_hand.py": (("XNOR",), "full"),
    "four_three_one.py": (("4-3-1 with a softmax output: predictions [1.0, 1.0",), "full"),
    "modular_network.py": (("gate weights",), "full"),
    "neuralnetwork_xor.py": (("JSON:",), "full"),
    "titanic_keras.py": (("validation accuracy",), "full"),
    "digits_pytorch.py": (("test accuracy",), "full"),
    "text_gpt.py": (("sample:",), "quick"),
}


def run_script(name: str, quick: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("GNN_EXAMPLES_QUICK", None)
    if quick:
        env["GNN_EXAMPLES_QUICK"] = "1"
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / name)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def number(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not in the output:\n{text[-2000:]}"
    return float(match.group(1))


def check_numbers(name: str, out: str) -> None:
    """What each tutorial claims, checked on its full run."""
    if name == "four_three_one.py":
        assert number(r"tanh output: test accuracy (\d\.\d+)", out) >= 0.95
        assert number(r"softmax output: test accuracy (\d\.\d+)", out) >= 0.95
    elif name == "modular_network.py":
        assert number(r"x = -2\.0: gate weights expert0 \d\.\d+, expert1 (\d\.\d+)", out) >= 0.9
        assert number(r"x = \+2\.0: gate weights expert0 (\d\.\d+)", out) >= 0.9
        assert number(r"epoch  150  mse (\d\.\d+)", out) < 0.01
    elif name == "neuralnetwork_xor.py":
        assert number(r"train: \{'error': ([\d.e-]+)", out) <= 0.005
        for a, b in ((0, 0), (0, 1), (1, 0), (1, 1)):
            assert round(number(rf"{a} xor {b} -> (\d\.\d+)", out)) == a ^ b
    elif name == "titanic_keras.py":
        assert number(r"validation accuracy (\d\.\d+)", out) >= 0.78
    elif name == "digits_pytorch.py":
        assert number(r"test accuracy (\d\.\d+) on", out) >= 0.95


def needs(*attrs: str) -> None:
    """Skip when a piece another part of gnn provides is not in this build yet."""
    import gnn

    for dotted in attrs:
        obj = gnn
        for part in dotted.split("."):
            try:
                obj = getattr(obj, part)
            except (AttributeError, ImportError):
                pytest.skip(f"gnn.{dotted} is not in this build")


NEEDS = {
    "titanic_keras.py": ("datasets.titanic", "optim.Adam"),
    "digits_pytorch.py": ("datasets.digits",),
    "text_gpt.py": ("datasets.text_corpus", "models.GPT", "optim.AdamW"),
}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_tutorial_script_runs(name):
    needs(*NEEDS.get(name, ()))
    expected, mode = SCRIPTS[name]
    proc = run_script(name, quick=mode == "quick")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    for text in expected:
        assert text in proc.stdout
    if mode == "full":
        check_numbers(name, proc.stdout)


def test_every_script_is_tested():
    assert sorted(p.name for p in (ROOT / "examples").glob("*.py")) == sorted(SCRIPTS)


def recipe_args(**kw) -> argparse.Namespace:
    base = dict(
        epochs=None,
        batch_size=None,
        lr=None,
        seed=None,
        device=None,
        save=None,
        plot=None,
        quiet=True,
        text=None,
    )
    base.update(kw)
    return argparse.Namespace(**base)


def test_xor_recipe():
    from gnn.examples import xor

    assert xor.main(recipe_args(epochs=3000), log=lambda *a: None)["accuracy"] == 1.0


@pytest.mark.slow
def test_titanic_recipe_reaches_078():
    needs("datasets.titanic", "optim.Adam")
    from gnn.examples import titanic

    assert titanic.main(recipe_args(), log=lambda *a: None)["val_accuracy"] >= 0.78


@pytest.mark.slow
def test_digits_mlp_reaches_095():
    needs("datasets.digits", "optim.Adam")
    from gnn.examples import digits

    assert digits.main(recipe_args(), log=lambda *a: None)["test_accuracy"] >= 0.95


@pytest.mark.slow
def test_digits_cnn_reaches_097():
    needs("datasets.digits", "optim.Adam", "nn.Conv2d", "nn.MaxPool2d", "nn.Flatten")
    from gnn.examples import digits_cnn

    assert digits_cnn.main(recipe_args(), log=lambda *a: None)["test_accuracy"] >= 0.97


@pytest.mark.slow
def test_autoencoder_beats_the_mean_image():
    needs("datasets.digits", "optim.Adam")
    from gnn.examples import autoencoder

    m = autoencoder.main(recipe_args(), log=lambda *a: None)
    assert m["test_mse"] < 0.5 * m["baseline_mse"]


# ---- Ctrl-C during training: gnn.examples._common.interruptible ----------------------------------


def _tiny_net():
    import gnn
    from gnn import nn

    gnn.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))


def _snapshot(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def _changed(before, model):
    import numpy as np

    after = _snapshot(model)
    return {k: not np.array_equal(before[k], after[k]) for k in before}


def _step_with_ctrl_c_inside(model, signal_after: int = 0):
    """An SGD step that updates the parameters one by one, with a Ctrl-C after the first."""
    import signal

    import gnn

    for i, p in enumerate(model.parameters()):
        with gnn.no_grad():
            p.sub_(0.1)
        if i == signal_after:
            signal.raise_signal(signal.SIGINT)


@pytest.mark.skipif(os.name != "posix", reason="SIGINT")
def test_a_ctrl_c_inside_the_optimizer_step_waits_for_the_step_to_end():
    import signal

    from gnn.examples._common import TrainingInterrupted, interruptible

    model = _tiny_net()
    before = _snapshot(model)
    with pytest.raises(TrainingInterrupted) as info:
        with interruptible(model, "xor", {"k": 1}, seed=3) as guard:
            for _ in range(5):
                with guard.step():
                    _step_with_ctrl_c_inside(model)
    changed = _changed(before, model)
    assert all(changed.values()), changed  # the whole step, not some layers
    exc = info.value
    assert isinstance(exc, KeyboardInterrupt) and exc.model is model
    assert (exc.example, exc.config, exc.extra) == ("xor", {"k": 1}, {"seed": 3})
    # the one step in which Ctrl-C came, not the five: a second step would subtract 0.2
    w = model.state_dict()["0.weight"].numpy()
    np.testing.assert_allclose(w, before["0.weight"] - 0.1, rtol=1e-6)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored


@pytest.mark.skipif(os.name != "posix", reason="SIGINT")
def test_without_the_guard_the_same_ctrl_c_cuts_the_step_in_half():
    """The fake interrupt above really lands mid-step: unguarded, it leaves a half-updated net."""
    model = _tiny_net()
    before = _snapshot(model)
    with pytest.raises(KeyboardInterrupt):
        _step_with_ctrl_c_inside(model)
    changed = _changed(before, model)
    assert any(changed.values()) and not all(changed.values()), changed


@pytest.mark.skipif(os.name != "posix", reason="SIGINT")
def test_a_ctrl_c_between_steps_stops_at_once_and_a_second_one_inside_a_step_cuts_it():
    import signal

    from gnn.examples._common import TrainingInterrupted, interruptible

    model = _tiny_net()
    steps = 0
    with pytest.raises(TrainingInterrupted):
        with interruptible(model, "xor", {}) as guard:
            with guard.step():
                _step_with_ctrl_c_inside(model, signal_after=-1)  # no Ctrl-C in this step
            steps += 1
            signal.raise_signal(signal.SIGINT)  # between steps: nothing to wait for
            steps += 1
    assert steps == 1
    with pytest.raises(KeyboardInterrupt) as info:
        with interruptible(model, "xor", {}) as guard:
            with guard.step():
                signal.raise_signal(signal.SIGINT)  # waits for the step...
                signal.raise_signal(signal.SIGINT)  # ...unless pressed again
                steps += 1
    assert steps == 1 and not isinstance(info.value, TrainingInterrupted)
    assert "second Ctrl-C" in str(info.value)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.skipif(os.name != "posix", reason="SIGINT")
def test_an_ignored_sigint_stays_ignored():
    import signal

    from gnn.examples._common import interruptible

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as for a job started with `&`
    try:
        with interruptible(_tiny_net(), "xor", {}) as guard:
            with guard.step():
                signal.raise_signal(signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.skipif(os.name != "posix", reason="SIGINT")
def test_fit_stops_after_the_batch_in_which_ctrl_c_came():
    import signal

    import gnn
    from gnn.examples._common import TrainingInterrupted, interruptible
    from gnn.layers import Dense, optimizers
    from gnn.train.callbacks import LambdaCallback

    gnn.manual_seed(0)
    model = gnn.Sequential()
    model.add(Dense(4, activation="relu", input_shape=(3,)))
    model.add(Dense(1))
    model.compile(optimizer=optimizers.SGD(learning_rate=0.1), loss="mse")
    before = _snapshot(model)
    ended = []
    # hooks run in list order: Ctrl-C comes after the guard marked batch 1 as a step, and the
    # end of each batch is noted before the guard acts on it
    note_end = LambdaCallback(on_train_batch_end=lambda b, logs: ended.append(b))
    ctrl_c = LambdaCallback(
        on_train_batch_begin=lambda b, logs: b == 1 and signal.raise_signal(signal.SIGINT)
    )
    x = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    with pytest.raises(TrainingInterrupted) as info:
        with interruptible(model, "digits", {"features": 3}) as guard:
            model.fit(x, x[:, :1], epochs=3, batch_size=8, verbose=0,
                      callbacks=[note_end, guard.callback(), ctrl_c])  # fmt: skip
    assert ended == [0, 1]  # batch 1, in which Ctrl-C came, ran to its end; no batch 2
    assert info.value.model is model and all(_changed(before, model).values())
