"""Data-parallel training steps on the CPU: 1 rank next to 2 ranks (mpiexec), for the MLP of
test_bench_mlp (784-256-10, global batch 128, SGD) and the small char GPT of
test_bench_transformer (4 layers, d_model 256, context 128, global batch 8, AdamW).

The ranks time themselves: this file, run as `mpiexec -n N python -m mpi4py
test_bench_distributed.py MODEL`, does warm-up steps, then timed steps, and rank 0 prints one JSON
line: the median step time, and the median time per step spent averaging gradients
(DistributedDataParallel.sync_gradients: packing the buckets, MPI Allreduce, unpacking, and the
wait for the slower rank). pytest-benchmark times each whole launch (start-up included: read
extra_info, not the table, for step times); extra_info holds step_ms, comm_ms, comm_share and,
for 2 ranks, step_ratio_vs_1_rank. Every rank gets one BLAS thread (1 rank uses one core, 2 ranks
two: on a 2-core machine more threads would only fight over the cores). No times are asserted.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

WARMUP, STEPS = {"mlp": 5, "gpt": 2}, {"mlp": 40, "gpt": 6}
_results: dict[tuple[str, int], dict] = {}


def _mpiexec() -> str | None:
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


# ---- the ranks' side -----------------------------------------------------------------------------


def _mlp_step(rank: int, world: int):
    import gnn
    from gnn import nn, optim

    gnn.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    rng = np.random.default_rng(rank)
    per = 128 // world
    x = gnn.tensor(rng.standard_normal((per, 784), dtype=np.float32))
    y = gnn.tensor(rng.integers(0, 10, per))
    loss_fn = nn.CrossEntropyLoss()
    return model, (lambda m: loss_fn(m(x), y)), optim.SGD(model.parameters(), lr=0.01)


def _gpt_step(rank: int, world: int):
    import gnn
    from gnn.models import GPT, GPTConfig

    cfg = GPTConfig(vocab_size=65, block_size=128, n_layer=4, n_head=8, n_embd=256)
    gnn.manual_seed(0)
    model = GPT(cfg)
    rng = np.random.default_rng(rank)
    per = 8 // world
    x = gnn.tensor(rng.integers(0, 65, (per, 128)))
    y = gnn.tensor(rng.integers(0, 65, (per, 128)))
    opt = gnn.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.99))
    return model, (lambda m: m(x, y)[1]), opt


def worker(name: str) -> None:
    """One rank: time STEPS steps after WARMUP; rank 0 prints the JSON summary."""
    import gnn.distributed as dist
    from gnn.nn.parallel import DistributedDataParallel

    dist.init_process_group("mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    model, loss_of, opt = {"mlp": _mlp_step, "gpt": _gpt_step}[name](rank, world)
    ddp = DistributedDataParallel(model)
    spent = [0.0]
    sync = ddp.sync_gradients

    def timed_sync() -> None:
        t0 = time.perf_counter()
        sync()
        spent[0] += time.perf_counter() - t0

    ddp.sync_gradients = timed_sync  # the backward marker calls it through the instance
    steps, comms = [], []
    for i in range(WARMUP[name] + STEPS[name]):
        dist.barrier()  # every step starts together, so the timings do not drift apart
        spent[0] = 0.0
        t0 = time.perf_counter()
        opt.zero_grad()
        loss_of(ddp).backward()
        opt.step()
        if i >= WARMUP[name]:
            steps.append(time.perf_counter() - t0)
            comms.append(spent[0])
    if rank == 0:
        step, comm = statistics.median(steps), statistics.median(comms)
        summary = {"world": world, "step_ms": step * 1e3, "comm_ms": comm * 1e3}
        summary["comm_share"] = comm / step
        summary["grad_mb"] = sum(p.array.nbytes for p in model.parameters()) / 2**20
        print("RESULT " + json.dumps(summary), flush=True)
    dist.destroy_process_group()


# ---- the pytest side -----------------------------------------------------------------------------


def _launch(name: str, world: int) -> dict:
    env = dict(os.environ)
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        env.pop(var, None)
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [_mpiexec(), "-n", str(world), sys.executable, "-m", "mpi4py", __file__, name]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


needs_mpi = pytest.mark.skipif(
    importlib.util.find_spec("mpi4py") is None or _mpiexec() is None,
    reason="needs mpi4py and mpiexec (pip install 'gnn[mpi]')",
)


def _bench(benchmark, name: str, world: int) -> None:
    result = benchmark.pedantic(_launch, args=(name, world), rounds=1, iterations=1)
    _results[(name, world)] = result
    benchmark.extra_info.update({k: round(v, 4) for k, v in result.items()})
    benchmark.extra_info["cpus"] = os.cpu_count()
    one = _results.get((name, 1))
    if world > 1 and one is not None:
        benchmark.extra_info["step_ratio_vs_1_rank"] = round(result["step_ms"] / one["step_ms"], 4)


@needs_mpi
@pytest.mark.benchmark(group="ddp-mlp-step-cpu")
def test_ddp_mlp_step_1_rank(benchmark):
    _bench(benchmark, "mlp", 1)


@needs_mpi
@pytest.mark.benchmark(group="ddp-mlp-step-cpu")
def test_ddp_mlp_step_2_ranks(benchmark):
    _bench(benchmark, "mlp", 2)


@needs_mpi
@pytest.mark.benchmark(group="ddp-gpt-small-step-cpu")
def test_ddp_gpt_small_step_1_rank(benchmark):
    _bench(benchmark, "gpt", 1)


@needs_mpi
@pytest.mark.benchmark(group="ddp-gpt-small-step-cpu")
def test_ddp_gpt_small_step_2_ranks(benchmark):
    _bench(benchmark, "gpt", 2)


if __name__ == "__main__":
    worker(sys.argv[1])
