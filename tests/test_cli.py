"""The gnn command: info, train, evaluate / predict round trip, errors; the bench table."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gnn
from gnn.cli import main

ROOT = Path(__file__).resolve().parent.parent


def _load_bench_runner():
    """benchmarks/run.py as a module: it is a script of the checkout, not part of the package."""
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "benchmarks" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench_run = _load_bench_runner()
format_bench_table = bench_run.format_bench_table


def test_info(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"gnn {gnn.__version__}" in out and "backends: cpu (NumPy)" in out


def test_info_says_how_to_get_cuda_without_a_gpu(capsys):
    if gnn.cuda_available():
        pytest.skip("this machine has a GPU")
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "cuda: not available" in out and "CuPy:" in out


def test_gpu_lines_name_memory_and_versions():
    import contextlib
    import types

    from gnn.cli import gpu_lines

    runtime = types.SimpleNamespace(
        getDeviceCount=lambda: 1,
        getDeviceProperties=lambda i: {"name": b"NVIDIA H100", "major": 9, "minor": 0},
        memGetInfo=lambda: (70 * 2**30, 80 * 2**30),
        runtimeGetVersion=lambda: 12040,
        driverGetVersion=lambda: 12060,
    )
    cupy = types.SimpleNamespace(
        __version__="13.3.0",
        cuda=types.SimpleNamespace(runtime=runtime, Device=lambda i: contextlib.nullcontext()),
    )
    assert gpu_lines(cupy) == [
        "GPU 0: NVIDIA H100, compute capability 9.0, 80.0 GiB memory (70.0 GiB free)",
        "CuPy 13.3.0, CUDA runtime 12.4, driver supports CUDA 12.6",
    ]


@pytest.mark.gpu
def test_info_on_a_gpu(capsys):
    if not gnn.cuda_available():
        pytest.skip("needs CuPy and a CUDA device")
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "cuda (CuPy)" in out and "GPU 0:" in out and "CUDA runtime" in out


def test_train_xor(capsys):
    assert main(["train", "xor", "--epochs", "3000", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert "accuracy 1" in out and "done in" in out


def test_xor_save_evaluate_predict_and_unused_option_note(capsys, tmp_path):
    path = tmp_path / "xor.safetensors"
    argv = ["train", "xor", "--epochs", "3000", "--batch-size", "2", "--save", str(path)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "does not use --batch-size" in captured.err
    assert path.exists() and path.with_suffix(".json").exists()
    assert main(["evaluate", str(path)]) == 0
    assert "binary_accuracy 1" in capsys.readouterr().out
    (tmp_path / "x.csv").write_text("a,b\n0,1\n1,1\n")
    assert main(["predict", str(path), "--input", str(tmp_path / "x.csv")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and float(lines[0].split()[1]) > 0.5 > float(lines[1].split()[1])


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


def test_bench_table_computes_ratios_from_the_baseline():
    # what pytest-benchmark really writes: no "ratio" in extra_info, only the roles
    results = {
        "benchmarks": [
            {"group": "g", "name": "slow", "stats": {"median": 0.004}, "extra_info": {}},
            {
                "group": "g",
                "name": "ref",
                "stats": {"median": 0.002},
                "extra_info": {"role": "baseline"},
            },
            {
                "group": "g",
                "name": "fast",
                "stats": {"median": 0.001},
                "extra_info": {"target": 1.5},
            },
            {"group": "h", "name": "alone", "stats": {"median": 0.001}, "extra_info": {}},
        ],
    }
    lines = {line.split()[1]: line for line in format_bench_table(results).splitlines()[3:]}
    assert "2.000x" in lines["slow"] and lines["slow"].split()[4] == "ref"
    assert "0.500x" in lines["fast"] and "meets target <= 1.5x" in lines["fast"]
    assert "baseline" in lines["ref"]
    assert "x" not in lines["alone"].split()[2:]  # no baseline in its group: no ratio


BENCH = """
import time
import pytest

@pytest.mark.benchmark(group="sleep")
def test_short(benchmark):
    benchmark.extra_info["role"] = "baseline"
    benchmark.pedantic(time.sleep, args=(0.002,), rounds=3, iterations=1)

@pytest.mark.benchmark(group="sleep")
def test_long(benchmark):
    benchmark.pedantic(time.sleep, args=(0.006,), rounds=3, iterations=1)
"""


def test_bench_runs_the_suite_and_prints_ratios(capsys, tmp_path):
    pytest.importorskip("pytest_benchmark")
    folder = tmp_path / "benchmarks"
    folder.mkdir()
    (folder / "test_bench_sleep.py").write_text(BENCH)
    assert bench_run.main(["--dir", str(folder), "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    row = next(
        line for line in out.splitlines() if line.startswith("sleep") and "test_long" in line
    )
    ratio = float(row.split()[3].rstrip("x"))
    assert 1.5 < ratio < 6  # 6 ms against 2 ms of sleep
    assert "baseline" in next(line for line in out.splitlines() if "test_short" in line)
    assert (tmp_path / "r.json").exists()


def test_bench_runner_without_folder(capsys, tmp_path):
    assert bench_run.main(["--dir", str(tmp_path / "none")]) == 2
    assert "no benchmarks folder" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["bench"], ["bench", "-k", "mlp", "--json", "r.json"]])
def test_gnn_bench_points_to_the_script(capsys, argv):
    # the installed package has no benchmarks: the command says where the runner is instead
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "python benchmarks/run.py" in err
    assert (ROOT / "benchmarks" / "run.py").is_file()


def test_import_gnn_stays_light():
    code = (
        "import sys, gnn; gnn.Sequential; print('tqdm' in sys.modules, 'matplotlib' in sys.modules)"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


def test_gnn_train_titanic_is_the_readme_job():
    """The command itself, as a user runs it: >= 0.78 held-out accuracy, well under 30 s."""
    import re
    import time

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "gnn", "train", "titanic"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    took = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr[-2000:]
    accuracy = float(re.search(r"validation accuracy (\d\.\d+)", proc.stdout).group(1))
    assert accuracy >= 0.78
    assert proc.stdout.count("Epoch ") == 40  # verbose=2 when not a terminal: a line per epoch
    assert took < 30


@pytest.mark.gpu
def test_gnn_device_cuda_trains_xor_from_the_command_line(tmp_path):
    """GNN_DEVICE=cuda gnn train xor, in a fresh process as a user runs it: accuracy 1 on cuda."""
    if not gnn.cuda_available():
        pytest.skip("needs CuPy and a CUDA device")
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, GNN_DEVICE="cuda", PYTHONPATH=path)
    proc = subprocess.run(
        [sys.executable, "-m", "gnn", "train", "xor"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "device cuda:0" in proc.stdout and ", accuracy 1, " in proc.stdout, proc.stdout


def test_train_plot_writes_a_png_or_says_how_to_get_matplotlib(capsys, tmp_path):
    path = tmp_path / "curves.png"
    assert main(["train", "titanic", "--epochs", "2", "--quiet", "--plot", str(path)]) == 0
    out = capsys.readouterr().out
    if importlib.util.find_spec("matplotlib"):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "written to" in out
    else:
        assert not path.exists() and "pip install 'gnn[plot]'" in out


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--epochs", "0", "must be >= 1"),
        ("--lr", "-0.1", "must be > 0"),
        ("--seed", "x", "not a number"),
    ],
)
def test_train_options_are_checked_by_argparse(capsys, option, value, message):
    with pytest.raises(SystemExit):
        main(["train", "titanic", option, value])
    assert message in capsys.readouterr().err
