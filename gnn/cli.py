"""The `gnn` command: info, train NAME, evaluate / predict a saved example, generate, export."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import math
import os
import platform
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

# `gnn train NAME` -> module in gnn.examples (each has main(args) -> dict of metrics)
EXAMPLES = {
    "xor": "xor",
    "titanic": "titanic",
    "digits": "digits",
    "digits-cnn": "digits_cnn",
    "autoencoder": "autoencoder",
    "text": "text",
    "translate": "translate",
}
# examples that `gnn evaluate` / `gnn predict` can rebuild from a saved file
SAVEABLE = ("xor", "titanic", "digits", "digits-cnn", "autoencoder")
# A recipe lists the `gnn train` options it cannot use in UNUSED_OPTIONS; the command then says
# so instead of ignoring them silently (--text is only for the text example).


def _example_module(name: str):
    """Import gnn.examples.<name>, with a clear message when this build does not have it."""
    mod = EXAMPLES[name]
    try:
        return importlib.import_module(f"gnn.examples.{mod}")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith(f"gnn.examples.{mod}"):
            raise RuntimeError(
                f"the '{name}' example (gnn/examples/{mod}.py) is not in this build of gnn"
            ) from exc
        raise


def _cuda_version(v: int) -> str:
    """CUDA's integer version (12040) as text (12.4)."""
    return f"{v // 1000}.{(v % 1000) // 10}"


def _cupy_distribution() -> str | None:
    """The installed CuPy wheel's name and version (e.g. cupy-cuda12x 13.3.0), without importing
    CuPy."""
    from importlib import metadata

    for dist in ("cupy-cuda13x", "cupy-cuda12x", "cupy-cuda11x", "cupy"):
        try:
            return f"{dist} {metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            continue
    return None


def gpu_lines(cupy) -> list[str]:
    """One line per CUDA device (name, memory) and one with the CuPy and CUDA versions."""
    rt = cupy.cuda.runtime
    lines = []
    for i in range(rt.getDeviceCount()):
        props = rt.getDeviceProperties(i)
        name = props["name"]
        name = name.decode() if isinstance(name, bytes) else str(name)
        with cupy.cuda.Device(i):
            free, total = rt.memGetInfo()
        cc = f"{props.get('major', '?')}.{props.get('minor', '?')}"
        lines.append(
            f"GPU {i}: {name}, compute capability {cc}, {total / 2**30:.1f} GiB memory "
            f"({free / 2**30:.1f} GiB free)"
        )
    lines.append(
        f"CuPy {cupy.__version__}, CUDA runtime {_cuda_version(rt.runtimeGetVersion())}, "
        f"driver supports CUDA {_cuda_version(rt.driverGetVersion())}"
    )
    return lines


def _info(args: argparse.Namespace) -> int:
    import numpy as np

    import gnn

    print(f"gnn {gnn.__version__}  (Python {platform.python_version()}, NumPy {np.__version__})")
    print(f"default device: {gnn.get_default_device()}, default dtype: {gnn.get_default_dtype()}")
    if gnn.cuda_available():
        from gnn.backend import get_backend

        print("backends: cpu (NumPy), cuda (CuPy)")
        for line in gpu_lines(get_backend("cuda").xp):
            print(line)
        return 0
    print("backends: cpu (NumPy); cuda: not available")
    cupy = _cupy_distribution()
    if cupy is None:
        print("CuPy: not installed (for NVIDIA GPUs: pip install 'gnn[cuda12]' or 'gnn[cuda13]')")
    else:
        print(f"CuPy: {cupy} is installed, but it finds no CUDA device (GPU or driver missing)")
    return 0


def _summary(metrics: dict) -> str:
    return ", ".join(
        f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()
    )


def _train(args: argparse.Namespace) -> int:
    import gnn

    if args.device:
        gnn.set_default_device(args.device)
    module = _example_module(args.example)
    unused = [
        name
        for name in getattr(module, "UNUSED_OPTIONS", ())
        if getattr(args, name, None) is not None
    ]
    if args.text is not None and args.example != "text":
        unused.append("text")
    for name in unused:
        print(
            f"gnn: note: the {args.example} example does not use --{name.replace('_', '-')}",
            file=sys.stderr,
        )
    # --save/--plot checked before training, so a bad path never costs a run (under mpiexec by
    # rank 0, which alone writes them)
    rank, world = _join_launcher(args)
    quiet = contextlib.redirect_stdout(io.StringIO()) if rank else contextlib.nullcontext()
    with quiet:
        if world > 1:
            print(f"gnn: {world} ranks (mpiexec): each trains on 1/{world} of every batch")
        start = time.perf_counter()
        try:
            metrics = module.main(args)  # saves (--save), then plots (--plot)
        except KeyboardInterrupt as exc:
            if world > 1:
                raise
            return _interrupted(args, exc, time.perf_counter() - start)
        except Exception as exc:
            if world == 1:
                raise
            # One rank failing must end them all, not leave the others waiting in a collective.
            print(f"gnn: error on rank {rank}: {exc}", file=sys.stderr, flush=True)
            _abort_all(2)
        took = time.perf_counter() - start
        print(f"done in {took:.1f} s: {_summary(metrics)}")
    return 0


# Suffixes matplotlib's Agg-based savefig writes (no suffix: PNG).
_PLOT_SUFFIXES = {
    "", ".png", ".pdf", ".svg", ".svgz", ".eps", ".ps", ".jpg", ".jpeg", ".tif", ".tiff",
    ".webp", ".pgf", ".raw", ".rgba",
}  # fmt: skip


def _check_output_paths(args: argparse.Namespace) -> None:
    """Refuse --save / --plot paths that cannot be written, before any training."""
    from gnn.examples._common import metadata_path

    targets = []
    if getattr(args, "save", None):
        targets += [("--save", Path(args.save)), ("--save", metadata_path(args.save))]
    if getattr(args, "plot", None):
        plot = Path(args.plot)
        if plot.suffix.lower() not in _PLOT_SUFFIXES:
            known = ", ".join(sorted(s for s in _PLOT_SUFFIXES if s))
            raise ValueError(
                f"--plot {args.plot}: cannot write a {plot.suffix} image (use one of {known})"
            )
        targets.append(("--plot", plot))
    for option, path in targets:
        folder = path.parent if str(path.parent) else Path(".")
        if path.is_dir():
            raise ValueError(f"{option} {path}: is a folder; give a file name in it")
        if not folder.is_dir():
            raise ValueError(f"{option} {path}: the folder {folder} does not exist")
        if not os.access(folder, os.W_OK | os.X_OK):  # saves write a temp file there, then rename
            raise ValueError(f"{option} {path}: cannot write in {folder} (permission denied)")


def _interrupted(args: argparse.Namespace, exc: KeyboardInterrupt, took: float) -> int:
    """Ctrl-C during training: save what was trained (with --save), say so in one line; 130.

    The recipes train inside gnn.examples._common.interruptible: a Ctrl-C there arrives as a
    TrainingInterrupted, raised between two steps, that carries the model and its settings.
    """
    from gnn.examples._common import TrainingInterrupted

    head = f"gnn: interrupted (Ctrl-C) after {took:.1f} s"
    if not args.save:
        note = "nothing saved (pass --save PATH to keep the weights of an interrupted run)"
    elif not isinstance(exc, TrainingInterrupted):  # before training, or a second Ctrl-C
        why = str(exc) or "training had not got far enough"
        note = f"{why}; nothing saved to {args.save}"
    else:
        try:
            exc.save(args.save)
            note = f"saved the weights trained so far to {args.save}"
        except Exception as err:  # e.g. layers not built yet: report, do not crash
            note = f"could not save to {args.save} ({err})"
    print(f"{head}; {note}", file=sys.stderr, flush=True)
    return 130


def _abort_all(code: int) -> None:
    import gnn.distributed as dist

    dist.abort(code)


def _join_launcher(args: argparse.Namespace) -> tuple[int, int]:
    """(rank, world size); under `mpiexec -n N` (N > 1) this joins the process group, and ranks
    other than 0 train silently and write no files (fit shards the batches: docs/distributed.md)."""
    import numpy as np

    import gnn.distributed as dist

    if dist.launcher_world_size() == 1 and not dist.is_initialized():
        _check_output_paths(args)
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group("mpi")
    rank = dist.get_rank()
    problem = None
    if rank == 0:
        try:
            _check_output_paths(args)
        except ValueError as exc:
            problem = exc
    # Every rank learns whether rank 0's check failed, so all stop together (none waits).
    failed = dist.all_reduce_array(np.array([problem is not None], dtype=np.int32), "max")
    if problem is not None:
        raise problem
    if failed[0]:
        raise SystemExit(2)  # rank 0 prints the error
    if rank != 0:
        args.save = args.plot = None
    return rank, dist.get_world_size()


def _load_saved(path: str, device: str | None):
    """(metadata, example module, model with the saved weights)."""
    import gnn
    from gnn.examples._common import load_weights, read_metadata

    try:
        meta = read_metadata(path)
        if not isinstance(meta, dict):
            raise ValueError(f"expected a JSON object, got {type(meta).__name__}")
    except (ValueError, AttributeError, TypeError) as e:
        from gnn.examples._common import metadata_path

        # an AttributeError: read_metadata called .get on a list or number
        reason = "expected a JSON object" if isinstance(e, AttributeError) else e
        raise ValueError(
            f"{metadata_path(path)}: the settings file beside {path} is not valid ({reason}); "
            f"save the model again with `gnn train NAME --save {path}`"
        ) from None
    name = meta.get("example")
    if name not in SAVEABLE:
        hint = f"; sample from it with: gnn generate --checkpoint {path}" if name == "text" else ""
        raise ValueError(
            f"{path}: example {name!r} cannot be rebuilt here (known: {', '.join(SAVEABLE)})" + hint
        )
    if device:
        gnn.set_default_device(device)
    module = _example_module(name)
    try:
        model = module.build_model(meta["config"])
        module.compile_model(model, 1e-3)  # builds lazy layers; the optimizer is not used
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ValueError(
            f"{path}: the settings beside it do not rebuild the {name} model "
            f"({type(e).__name__}: {e}); save the model again with `gnn train {name} --save`"
        ) from None
    try:
        model.load_state_dict(load_weights(path))
    except RuntimeError as e:
        raise RuntimeError(f"{path}: {e}") from None
    return meta, module, model


def _evaluate(args: argparse.Namespace) -> int:
    meta, module, model = _load_saved(args.model, args.device)
    seed = meta.get("seed", 0)
    _, _, x_test, y_test = module.load_data(seed)[:4]
    result = model.evaluate(x_test, y_test, batch_size=256)
    print(
        f"{meta['example']} ({args.model}), held-out split of seed {seed}, {len(x_test)} samples: "
        f"{_summary(result)}"
    )
    return 0


def _read_inputs(path: str):
    import numpy as np

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no input file at {path}")
    if p.is_dir():
        raise ValueError(f"--input {path} is a folder; pass a CSV or .npy file")
    try:
        if p.suffix == ".npy":
            rows = np.load(p)  # allow_pickle=False: an object array is refused, not run
        else:
            with warnings.catch_warnings():  # an empty file: our error below says it better
                warnings.simplefilter("ignore", UserWarning)
                rows = np.genfromtxt(p, delimiter=",", dtype=np.float32, names=None)
    except (ValueError, OSError, EOFError) as e:
        raise ValueError(f"--input {path}: cannot read it as {p.suffix or 'CSV'} ({e})") from None
    if rows.dtype.kind not in "biuf":
        raise ValueError(f"--input {path}: holds {rows.dtype} data, not numbers")
    if rows.ndim == 1:
        rows = rows[None, :]
    if rows.size and np.isnan(rows[0]).all():  # a header line
        rows = rows[1:]
    if rows.size == 0:
        raise ValueError(f"--input {path}: no samples in it")
    return rows


def _predict(args: argparse.Namespace) -> int:
    import numpy as np

    meta, _, model = _load_saved(args.model, args.device)
    x = _read_inputs(args.input).astype(np.float32)
    if meta["example"] == "digits-cnn":
        x = x.reshape(-1, 1, 8, 8)
    out = model.predict(x, batch_size=256)
    if args.output:
        np.save(args.output, out) if args.output.endswith(".npy") else np.savetxt(
            args.output, out, delimiter=",", fmt="%.6g"
        )
        print(f"wrote {len(out)} predictions to {args.output}")
        return 0
    for i, row in enumerate(out):
        if meta["example"] == "titanic":
            print(f"{i}: survives with probability {row[0]:.3f}")
        elif meta["example"] in ("digits", "digits-cnn"):
            print(f"{i}: digit {int(np.argmax(row))}")
        else:
            print(f"{i}: " + " ".join(f"{v:.3f}" for v in np.ravel(row)))
    return 0


def _generate(args: argparse.Namespace) -> int:
    import gnn

    if args.device:
        gnn.set_default_device(args.device)
    module = _example_module("text")
    if not hasattr(module, "generate_main"):
        raise RuntimeError("gnn.examples.text has no generate_main(args) in this build")
    module.generate_main(args)
    return 0


def _export(args: argparse.Namespace) -> int:
    """`gnn export PATH --onnx OUT`: a saved example as ONNX, batch (and sequence) dynamic."""
    import numpy as np

    import gnn
    from gnn.examples._common import read_metadata

    meta = read_metadata(args.model)
    if meta.get("example") == "text":
        model, _ = _example_module("text").load_model(args.model)
        block = model.config.block_size
        ids = np.zeros((2, min(8, block)), dtype=np.int64)
        example, names = gnn.tensor(ids), (["idx"], ["logits"])
        axes = {"idx": {0: "batch", 1: "seq"}, "logits": {0: "batch", 1: "seq"}}
    else:
        meta, module, model = _load_saved(args.model, "cpu")
        x = np.asarray(module.load_data(meta.get("seed", 0))[2][:2], dtype=np.float32)
        if meta["example"] == "digits-cnn":
            x = x.reshape(-1, 1, 8, 8)
        example, names = gnn.tensor(x), (["input"], ["output"])
        axes = {"input": {0: "batch"}, "output": {0: "batch"}}
    from gnn.onnx import export

    export(
        model, (example,), args.onnx, input_names=names[0], output_names=names[1],
        dynamic_axes=axes, opset_version=args.opset,
    )  # fmt: skip
    print(f"wrote {args.onnx} ({meta['example']}, inputs {names[0]}, outputs {names[1]})")
    return 0


BENCH_MOVED = (
    "`gnn bench` is gone: the benchmarks compare gnn with NumPy and PyTorch and live in the source "
    "repository, not in the installed package. From a checkout, with gnn[dev] installed, run "
    "`python benchmarks/run.py [-k EXPR] [--json PATH]` (results: docs/performance.md)."
)


def _bench(args: argparse.Namespace) -> int:
    print(f"gnn: {BENCH_MOVED}", file=sys.stderr)
    return 2


def _number(kind: type, low: float, strict: bool):
    """An argparse type: `kind` values above `low` (or at least `low` when not strict)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value):  # "inf" and "nan" parse as floats
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if value < low or (strict and value == low):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {low}, got {text}")
        return value

    return parse


def _add_train_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device", default=None, help="cpu, cuda or cuda:N (default: GNN_DEVICE or cpu)"
    )
    p.add_argument(
        "--epochs", type=_number(int, 1, False), default=None, help="epochs (steps for xor)"
    )
    p.add_argument("--batch-size", type=_number(int, 1, False), default=None)
    p.add_argument("--lr", type=_number(float, 0, True), default=None, help="learning rate")
    p.add_argument("--seed", type=_number(int, 0, False), default=None)
    p.add_argument(
        "--save",
        default=None,
        metavar="PATH",
        help="save the weights (safetensors) to PATH and the settings to PATH's .json",
    )
    p.add_argument("--plot", default=None, metavar="PATH", help="write training curves (PNG)")
    p.add_argument("--text", default=None, metavar="FILE", help="text example: train on this file")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines")


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the `gnn` command."""
    parser = argparse.ArgumentParser(prog="gnn", description="gnn: train and inspect models.")
    sub = parser.add_subparsers(dest="command", required=True)

    info = sub.add_parser("info", help="version, backends, GPU")
    info.set_defaults(func=_info)

    train = sub.add_parser("train", help="train a shipped example")
    train.add_argument("example", choices=list(EXAMPLES), help="which example to train")
    _add_train_options(train)
    train.add_argument(
        "--precision",
        choices=["fp32", "bf16", "fp16"],
        default="fp32",
        help="fp32 (default); bf16 or fp16: mixed precision (autocast; fp16 with loss scaling)",
    )
    train.set_defaults(func=_train_in_precision)

    ev = sub.add_parser("evaluate", help="evaluate a model saved by `gnn train NAME --save PATH`")
    ev.add_argument("model", metavar="PATH", help="the weights file written by --save")
    ev.add_argument("--device", default=None)
    ev.set_defaults(func=_evaluate)

    pr = sub.add_parser("predict", help="run a saved model on inputs from a CSV or .npy file")
    pr.add_argument("model", metavar="PATH", help="the weights file written by --save")
    pr.add_argument(
        "--input",
        required=True,
        metavar="FILE",
        help="CSV (optional header) or .npy, one sample per row, features as in training",
    )
    pr.add_argument("--output", default=None, metavar="FILE", help="write predictions (.csv/.npy)")
    pr.add_argument("--device", default=None)
    pr.set_defaults(func=_predict)

    gen = sub.add_parser("generate", help="sample text from a checkpoint of `gnn train text`")
    gen.add_argument("--checkpoint", required=True, metavar="PATH")
    gen.add_argument("--prompt", default="", metavar="TEXT")
    gen.add_argument("--max-new-tokens", type=int, default=200)
    gen.add_argument("--temperature", type=float, default=1.0)
    gen.add_argument("--top-k", type=int, default=None)
    gen.add_argument("--seed", type=int, default=None)
    gen.add_argument("--device", default=None)
    gen.set_defaults(func=_generate)

    exp = sub.add_parser("export", help="export a model saved by `gnn train NAME --save` to ONNX")
    exp.add_argument("model", metavar="PATH", help="the weights file written by --save")
    exp.add_argument("--onnx", required=True, metavar="OUT", help="the .onnx file to write")
    exp.add_argument("--opset", type=int, default=17, help="ONNX opset version (17-21)")
    exp.set_defaults(func=_export)

    bench = sub.add_parser("bench", help="moved: python benchmarks/run.py in a source checkout")
    for flag in ("-k", "--dir", "--json"):  # the old options, so old command lines get the message
        bench.add_argument(flag, default=None, help=argparse.SUPPRESS)
    bench.add_argument("--verbose", action="store_true", help=argparse.SUPPRESS)
    bench.set_defaults(func=_bench)
    return parser


def _train_in_precision(args: argparse.Namespace) -> int:
    """`gnn train --precision P`: recipes trained by fit get fit(mixed_precision=P); with bf16,
    recipes with their own loop run under autocast (fp16 needs fit's loss scaling)."""
    import contextlib

    import gnn

    if args.precision == "fp32":
        return _train(args)
    device_type = gnn.Device(args.device or str(gnn.get_default_device())).type
    with contextlib.ExitStack() as stack:
        used = stack.enter_context(gnn.amp.default_training_precision(args.precision))
        if args.precision == "bf16":  # autocast bf16 needs no loss scaling: any loop is fine
            stack.enter_context(gnn.autocast(device_type, dtype=gnn.bfloat16))
        code = _train(args)
        if args.precision == "fp16" and not used.used:
            print(
                f"gnn: note: the {args.example} example has its own training loop, which does "
                "not scale the loss: it trained in fp32 (use --precision bf16, or an example "
                "trained by fit)",
                file=sys.stderr,
            )
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `gnn` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, RuntimeError, OSError, ImportError) as exc:
        print(f"gnn: error: {exc}", file=sys.stderr)
        return 2


def command() -> int:
    """The installed `gnn` command (and `python -m gnn`): main() in a process that it owns."""
    from gnn.backend import host_memory

    # A command owns its process, so it may keep freed array memory for reuse (process-wide, so
    # never done by `import gnn` or by main() called from someone else's program).
    host_memory.tune_malloc()
    return main()


if __name__ == "__main__":
    sys.exit(command())
