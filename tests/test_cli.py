"""The gnn command: info, train, evaluate / predict round trip, errors, the bench table."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gnn
from gnn.cli import format_bench_table, main

ROOT = Path(__file__).resolve().parent.parent


def test_info(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"gnn {gnn.__version__}" in out and "backends: cpu (NumPy)" in out


def test_train_xor(capsys):
    assert main(["train", "xor", "--epochs", "3000", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert "accuracy 1" in out and "done in" in out


def test_unknown_example_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit):
        main(["train", "mnist"])
    assert "invalid choice" in capsys.readouterr().err


def test_missing_example_module_is_a_clear_error(capsys, monkeypatch):
    import gnn.cli as cli

    monkeypatch.setitem(cli.EXAMPLES, "text", "no_such_recipe")
    assert main(["train", "text"]) == 2
    assert "not in this build" in capsys.readouterr().err


def test_evaluate_missing_file(capsys, tmp_path):
    assert main(["evaluate", str(tmp_path / "nope.safetensors")]) == 2
    assert "no weights file" in capsys.readouterr().err


def test_save_evaluate_predict_round_trip(capsys, tmp_path):
    try:
        gnn.datasets.titanic  # noqa: B018
        gnn.optim.Adam  # noqa: B018
    except AttributeError:
        pytest.skip("gnn.datasets.titanic / gnn.optim.Adam not in this build")
    path = tmp_path / "titanic.safetensors"
    assert main(["train", "titanic", "--epochs", "2", "--quiet", "--save", str(path)]) == 0
    assert path.exists() and path.with_suffix(".json").exists()
    capsys.readouterr()
    assert main(["evaluate", str(path)]) == 0
    assert "accuracy" in capsys.readouterr().out
    from gnn.examples import titanic

    _, _, x_val, _, _ = titanic.load_data(0)
    np.savetxt(tmp_path / "x.csv", x_val[:3], delimiter=",")
    assert main(["predict", str(path), "--input", str(tmp_path / "x.csv")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and "survives with probability" in lines[0]


def test_bench_table_from_extra_info():
    results = {
        "machine_info": {"node": "box", "cpu": {"brand_raw": "cpu"}, "python_version": "3.11"},
        "benchmarks": [
            {
                "group": "mlp",
                "name": "numpy",
                "stats": {"median": 0.002},
                "extra_info": {"role": "baseline"},
            },
            {
                "group": "mlp",
                "name": "gnn",
                "stats": {"median": 0.0021},
                "extra_info": {"ratio": 1.05, "baseline": "numpy", "target": 1.1},
            },
        ],
    }
    table = format_bench_table(results)
    assert "baseline" in table and "1.050x" in table and "target <= 1.1x" in table


def test_bench_without_folder(capsys, tmp_path):
    assert main(["bench", "--dir", str(tmp_path / "none")]) == 2
    assert "no benchmarks folder" in capsys.readouterr().err


def test_import_gnn_stays_light():
    code = (
        "import sys, gnn; gnn.Sequential; print('tqdm' in sys.modules, 'matplotlib' in sys.modules)"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]
