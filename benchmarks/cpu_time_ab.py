"""Single-thread CPU time of the suite's gnn training workloads, for A/B runs between two commits.

Wall-clock medians on a shared VM swing by up to 2x for seconds at a time; the process's CPU
time with one BLAS thread is much steadier, so a change of a few percent shows. From the
repository root, time each tree in turn (an old commit checked out with `git worktree add
/tmp/old COMMIT`), alternating a few times:

    export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
    PYTHONPATH=/tmp/old python benchmarks/cpu_time_ab.py /tmp/old --label old
    PYTHONPATH=. python benchmarks/cpu_time_ab.py . --label new

The argument is the source tree whose `gnn` and `benchmarks/` are timed (PYTHONPATH must point
at the same tree, so that `import gnn` finds it). It prints, per workload, the minimum and median
CPU time: the MLP epoch of test_bench_mlp.py on 20,000 samples (with the hand-written NumPy
epoch as the baseline in the same process), and one training step of the digits CNN, the LSTM and
the small GPT of test_bench_layers.py and test_bench_transformer.py. glibc's allocator is tuned
first where that tree has the call (gnn.backend.host_memory), as the suite's conftest does.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


class _Timer:
    """Stands in for pytest-benchmark's fixture: runs the step `repeats` times, timing each."""

    def __init__(self, repeats: int) -> None:
        self.extra_info: dict[str, Any] = {}
        self.repeats = repeats
        self.times: list[float] = []

    def pedantic(self, step: Callable[[], Any], **_: Any) -> None:
        for _ in range(2):  # warm-up
            step()
        for _ in range(self.repeats):
            start = time.process_time()
            step()
            self.times.append(time.process_time() - start)


def _timed(bench: Callable[[_Timer], None], repeats: int) -> list[float]:
    timer = _Timer(repeats)
    bench(timer)
    return timer.times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("tree", help="the source tree to time (its gnn/ and benchmarks/)")
    parser.add_argument("--label", default=None, help="a name for the output line")
    args = parser.parse_args(argv)
    tree = Path(args.tree).resolve()
    sys.path.insert(0, str(tree / "benchmarks"))
    import numpy as np

    import gnn

    if not Path(gnn.__file__).resolve().is_relative_to(tree):
        parser.error(f"import gnn found {gnn.__file__}: set PYTHONPATH={tree}")
    try:
        from gnn.backend import host_memory

        host_memory.tune_malloc()
    except ImportError:  # older trees tuned the allocator when gnn was imported
        pass
    import test_bench_layers as layers
    import test_bench_mlp as mlp
    import test_bench_transformer as transformer

    import gnn.functional as F
    from gnn import optim

    rng = np.random.default_rng(0)
    x = rng.standard_normal((20_000, mlp.D), dtype=np.float32)
    y = rng.integers(0, mlp.C, len(x)).astype(np.int64)
    model = mlp._gnn_model()
    opt = optim.SGD(model.parameters(), lr=mlp.LR)
    params = mlp._init_weights()
    ours, numpy = [], []
    for _ in range(8):  # the first pair warms up
        start = time.process_time()
        mlp.gnn_epoch(x, y, model, opt)
        ours.append(time.process_time() - start)
        start = time.process_time()
        mlp.numpy_epoch(x, y, params)
        numpy.append(time.process_time() - start)
    results = {"mlp epoch": ours[1:], "numpy epoch": numpy[1:]}
    gnn.manual_seed(0)
    cnn = (layers.gnn_cnn(), *layers._cnn_data(), F.cross_entropy, 2.0)
    results["cnn step"] = _timed(lambda b: layers._bench_gnn(b, *cnn), 60)
    gnn.manual_seed(0)
    lstm = (layers.GnnSeq(), *layers._seq_data(), F.mse_loss, 1.5)
    results["lstm step"] = _timed(lambda b: layers._bench_gnn(b, *lstm), 40)
    results["gpt step"] = _timed(
        lambda b: transformer._bench_step(b, transformer.SMALL, "cpu", None), 8
    )
    cells = [
        f"{name} {min(t) * 1e3:.2f}/{statistics.median(t) * 1e3:.2f}" for name, t in results.items()
    ]
    ratio = min(results["mlp epoch"]) / min(results["numpy epoch"])
    print(f"{args.label or tree}: ms min/median: " + ", ".join(cells) + f"; mlp/numpy {ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
