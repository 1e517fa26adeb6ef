"""Issue 17: the `gnn` command checks its paths and values first, keeps trained work, and turns
bad files and Ctrl-C into one clear line, not a traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import gnn
from gnn.cli import main


def _xor(tmp_path, *extra):
    path = tmp_path / "xor.safetensors"
    argv = ["train", "xor", "--epochs", "50", "--save", str(path), *extra]
    return path, argv


# ---- values and paths checked before training --------------------------------------------------


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "NaN", "0", "-1e-3"])
def test_lr_must_be_finite_and_positive(capsys, value):
    with pytest.raises(SystemExit) as info:
        main(["train", "xor", f"--lr={value}"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --lr" in err and ("finite" in err or "must be > 0" in err)
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "option, make, message",
    [
        ("--save", lambda t: t / "missing" / "w.safetensors", "does not exist"),
        ("--save", lambda t: t, "is a folder"),
        ("--plot", lambda t: t / "missing" / "curves.png", "does not exist"),
        ("--plot", lambda t: t / "curves.xyz", "cannot write a .xyz image"),
        ("--plot", lambda t: t, "is a folder"),
    ],
)
def test_save_and_plot_paths_are_checked_before_training(capsys, tmp_path, option, make, message):
    assert main(["train", "xor", "--epochs", "50", option, str(make(tmp_path))]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and option in captured.err
    assert "xor: 2-3-1" not in captured.out  # no training ran


def test_save_json_beside_must_not_be_a_folder(capsys, tmp_path):
    (tmp_path / "w.json").mkdir()
    assert main(["train", "xor", "--epochs", "50", "--save", str(tmp_path / "w.safetensors")]) == 2
    assert "w.json: is a folder" in capsys.readouterr().err


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_save_in_a_read_only_folder_is_refused_first(capsys, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        assert main(["train", "xor", "--epochs", "50", "--save", str(folder / "w.st")]) == 2
    finally:
        folder.chmod(0o700)
    assert "permission denied" in capsys.readouterr().err


def test_a_failing_plot_never_loses_the_model(capsys, tmp_path, monkeypatch):
    from gnn.train import History

    def broken(self, path):
        raise RuntimeError("the plotting backend fell over")

    monkeypatch.setattr(History, "plot", broken)
    path, argv = _xor(tmp_path, "--plot", str(tmp_path / "curves.png"))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "could not write the plot" in err and "fell over" in err
    assert f"the model was saved to {path}" in err
    assert set(gnn.load(path)) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert main(["evaluate", str(path)]) == 0


def test_plots_still_come_out_after_the_save(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    path, argv = _xor(tmp_path, "--plot", str(tmp_path / "curves.png"))
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "curves.png").stat().st_size > 0 and path.exists()
    assert out.index("saved weights to") < out.index("training curves written to")


def test_a_failing_text_plot_never_loses_the_model(capsys, tmp_path, monkeypatch):
    from gnn.examples import text

    for key, value in TINY_TEXT.items():
        monkeypatch.setitem(text.DEFAULTS, key, value)

    def broken(self, path):
        raise ValueError("no room for the legend")

    monkeypatch.setattr(text._Curves, "plot", broken)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 60)
    path = tmp_path / "t.safetensors"
    argv = ["train", "text", "--epochs", "1", "--text", str(corpus), "--save", str(path)]
    assert main([*argv, "--plot", str(tmp_path / "curves.png")]) == 2
    err = capsys.readouterr().err
    assert "could not write the plot" in err and "no room for the legend" in err
    assert f"the model was saved to {path}" in err
    assert "interrupted" not in json.loads(path.with_suffix(".json").read_text())
    assert main(["generate", "--checkpoint", str(path), "--max-new-tokens", "3"]) == 0


# ---- files given to evaluate / predict ---------------------------------------------------------


@pytest.mark.parametrize(
    "settings, message",
    [
        ("{not json", "is not valid"),
        ("", "is not valid"),
        ("[1, 2]", "expected a JSON object"),
        (json.dumps({"format": "gnn-example/1", "example": "xor"}), "do not rebuild"),
        (
            json.dumps({"format": "gnn-example/1", "example": "digits", "config": {"x": 1}}),
            "do not rebuild",
        ),
    ],
)
def test_corrupt_settings_json_is_a_clear_error(capsys, tmp_path, settings, message):
    path, argv = _xor(tmp_path)
    assert main(argv) == 0
    path.with_suffix(".json").write_text(settings)
    capsys.readouterr()
    for command in (["evaluate", str(path)], ["predict", str(path), "--input", str(path)]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert message in err and str(path) in err and "Traceback" not in err


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda t: t, "is a folder"),
        (lambda t: _write(t / "empty.csv", ""), "no samples"),
        (lambda t: _write(t / "junk.npy", "not an npy file"), "cannot read it"),
        (lambda t: _npy(t / "obj.npy", np.array([{"a": 1}], dtype=object)), "cannot read it"),
    ],
)
def test_bad_input_files_are_clear_errors(capsys, tmp_path, make, message):
    path, argv = _xor(tmp_path)
    assert main(argv) == 0
    capsys.readouterr()
    folder = tmp_path / "inputs"
    folder.mkdir()
    assert main(["predict", str(path), "--input", str(make(folder))]) == 2
    err = capsys.readouterr().err
    assert message in err and "--input" in err


def _write(path, text):
    path.write_text(text)
    return path


def _npy(path, array):
    np.save(path, array, allow_pickle=True)
    return path


# ---- Ctrl-C ------------------------------------------------------------------------------------


def _interrupt_training(tmp_path, *extra, example="digits", marker="Epoch 1/", defaults=None):
    """Start `gnn train EXAMPLE`, send SIGINT once `marker` is printed; (rc, out, err).

    defaults: recipe DEFAULTS to shrink (sizes the command line does not set), so the model is
    small and the first epoch comes quickly.
    """
    run = (
        f"import sys; from gnn.cli import main; import gnn.examples.{example.replace('-', '_')} "
        f"as m; m.DEFAULTS.update({defaults or {}!r}); sys.exit(main(sys.argv[1:]))"
    )
    argv = [sys.executable, "-c", run, "train", example, "--epochs", "500", *extra]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path
    )
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if line.startswith(marker):
                proc.send_signal(signal.SIGINT)
                break
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, "".join(seen) + out, err


def _one_line_saved(rc, err, path):
    assert rc == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("gnn: interrupted (Ctrl-C)")
    assert f"saved the weights trained so far to {path}" in lines[0]
    weights = gnn.load(path)
    assert weights and all(np.isfinite(w.numpy()).all() for w in weights.values())
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["interrupted"] is True
    return weights, meta


@pytest.mark.skipif(os.name != "posix", reason="SIGINT to a child process")
def test_ctrl_c_saves_what_was_trained_with_one_line(tmp_path):
    path = tmp_path / "d.safetensors"
    rc, out, err = _interrupt_training(tmp_path, "--save", str(path))
    _one_line_saved(rc, err, path)
    assert main(["evaluate", str(path)]) == 0


@pytest.mark.skipif(os.name != "posix", reason="SIGINT to a child process")
def test_ctrl_c_without_save_says_how_to_keep_the_weights(tmp_path):
    rc, out, err = _interrupt_training(tmp_path)
    assert rc == 130
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "nothing saved (pass --save PATH" in lines[0]
    assert not list(tmp_path.iterdir())


# small sizes (the command line sets none of them): a few steps an epoch, a quick first epoch
TINY_TEXT = {"steps_per_epoch": 3, "batch_size": 4, "block_size": 16, "n_layer": 1, "n_head": 2,
             "n_embd": 16, "eval_batches": 1, "warmup": 2}  # fmt: skip
TINY_TRANSLATE = {"steps_per_epoch": 3, "batch_size": 8, "max_number": 999, "test_size": 20,
                  "d_model": 16, "nhead": 2, "layers": 1, "dim_feedforward": 32}  # fmt: skip


@pytest.mark.skipif(os.name != "posix", reason="SIGINT to a child process")
def test_ctrl_c_saves_the_text_model_for_gnn_generate(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 60)
    path = tmp_path / "t.safetensors"
    rc, out, err = _interrupt_training(
        tmp_path, "--text", str(corpus), "--save", str(path), example="text",
        marker="epoch 1/", defaults=TINY_TEXT,
    )  # fmt: skip
    weights, meta = _one_line_saved(rc, err, path)
    assert meta["example"] == "text" and meta["config"]["n_embd"] == 16
    assert "tokenizer" in meta and "sample:" not in out  # stopped in training, not after it
    assert not (tmp_path / "gnn-text.safetensors").exists()  # --save, not the recipe's default
    capsys.readouterr()
    argv = ["generate", "--checkpoint", str(path), "--prompt", "the ", "--max-new-tokens", "5"]
    assert main([*argv, "--seed", "0"]) == 0
    text = capsys.readouterr().out.strip()
    assert text.startswith("the ") and len(text) == len("the ") + 5


@pytest.mark.skipif(os.name != "posix", reason="SIGINT to a child process")
def test_ctrl_c_saves_the_translate_model(tmp_path):
    from gnn.examples import translate

    path = tmp_path / "tr.safetensors"
    rc, out, err = _interrupt_training(
        tmp_path, "--save", str(path), example="translate", marker="epoch 1/",
        defaults=TINY_TRANSLATE,
    )  # fmt: skip
    weights, meta = _one_line_saved(rc, err, path)
    cfg = meta["config"]
    assert meta["example"] == "translate" and cfg["d_model"] == 16 and cfg["max_number"] == 999
    assert "numbers), training" not in out  # stopped in training, not after it
    model = translate.NumberTranslator(
        cfg["d_model"], cfg["nhead"], cfg["layers"], cfg["dim_feedforward"], cfg["norm_first"],
        cfg["dropout"],
    )  # fmt: skip
    model.load_state_dict(weights)  # strict: the file holds every weight of the saved config
    task = translate.Task(cfg["max_number"], cfg["test_size"], cfg["seed"])
    assert 0.0 <= translate.exact_match(model, task, task.test[:5], None) <= 1.0


@pytest.mark.skipif(os.name != "posix", reason="SIGINT to a child process")
def test_ctrl_c_of_the_text_recipe_without_save_writes_nothing(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 60)
    rc, out, err = _interrupt_training(
        tmp_path, "--text", str(corpus), example="text", marker="epoch 1/", defaults=TINY_TEXT
    )
    assert rc == 130
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "nothing saved (pass --save PATH" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.txt"]
