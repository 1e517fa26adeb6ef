"""gnn.distributed, DistributedDataParallel, DistributedSampler and fit under mpiexec.

Multi-process tests start `mpiexec -n 2 python -m mpi4py tests/distributed_scripts/...` under a
timeout (the whole process group is killed when it runs out, so a hang fails the test instead of
CI) and compare what the ranks wrote with a run of the same script in one plain process (a
script without a launcher is a group of one). They skip, saying why, when mpi4py or mpiexec is
missing: pip install 'gnn[mpi]'.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import FAKE_CUDA

import gnn
import gnn.distributed as dist
from gnn import nn
from gnn.data import DataLoader, DistributedSampler, TensorDataset
from gnn.nn.parallel import DistributedDataParallel

SCRIPTS = Path(__file__).parent / "distributed_scripts"
TIMEOUT = 120  # seconds per launch; a healthy one takes 1-3 s here


def _mpiexec() -> str | None:
    beside = Path(sys.executable).parent / "mpiexec"  # the mpich wheel installs it in the venv
    return str(beside) if beside.exists() else shutil.which("mpiexec")


MPIEXEC = _mpiexec()
HAVE_MPI = importlib.util.find_spec("mpi4py") is not None and MPIEXEC is not None
needs_mpi = pytest.mark.skipif(
    not HAVE_MPI,
    reason="needs mpi4py and mpiexec (pip install 'gnn[mpi]' installs both)",
)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # One BLAS thread per rank: the ranks share the cores, and runs stay comparable.
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    for size, rank, local in dist._LAUNCHER_ENV:  # a run inside mpiexec must not leak into ours
        for name in (size, rank, local):
            env.pop(name, None)
    return env


def run(cmd: list[str], timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    """Run cmd in its own process group; on timeout kill the whole group and fail."""
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(cmd)} did not finish in {timeout} s:\n{out}\n{err}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def ranks(n: int, *args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    """`mpiexec -n n python -m mpi4py args...`"""
    return run([MPIEXEC, "-n", str(n), sys.executable, "-m", "mpi4py", *args], timeout)


def alone(*args: str) -> subprocess.CompletedProcess:
    """`python args...` without a launcher: a group of one."""
    return run([sys.executable, *args])


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


# ---- in one process, no MPI ----------------------------------------------------------------------


def test_import_gnn_does_not_import_mpi4py() -> None:
    code = (
        "import sys, gnn, gnn.nn, gnn.data, gnn.train, gnn.distributed, gnn.nn.parallel; "
        "sys.exit('mpi4py' in sys.modules)"
    )
    ok(alone("-c", code))


def test_distributed_is_an_attribute_after_import_gnn() -> None:
    # as torch.distributed after `import torch`, and still without mpi4py until a group starts
    code = (
        "import sys, gnn; d = gnn.distributed; "
        "sys.exit(d.get_world_size() != 1 or d.is_initialized() or 'mpi4py' in sys.modules)"
    )
    ok(alone("-c", code))


@pytest.fixture
def group_of_one(monkeypatch: pytest.MonkeyPatch):
    """An initialized group of one that never touches MPI (as without mpi4py installed)."""
    for size, _, _ in dist._LAUNCHER_ENV:
        monkeypatch.delenv(size, raising=False)
    monkeypatch.setattr(dist, "is_available", lambda: False)
    dist.init_process_group("mpi")
    yield
    if dist.is_initialized():
        dist.destroy_process_group()


def test_group_of_one_without_a_launcher(group_of_one: None) -> None:
    assert dist.is_initialized() and dist.get_backend() == "mpi" and dist.get_device() == "cpu"
    assert (dist.get_rank(), dist.get_world_size(), dist.get_local_rank()) == (0, 1, 0)
    t = gnn.tensor([1.0, -2.0])
    for op in ("sum", "mean", "max", "min"):
        assert dist.all_reduce(t, op) is t
        np.testing.assert_array_equal(t.numpy(), [1.0, -2.0])
    assert dist.broadcast(t, 0) is t
    got = [gnn.zeros(2)]
    dist.all_gather(got, t)
    np.testing.assert_array_equal(got[0].numpy(), [1.0, -2.0])
    dist.barrier()
    dist.destroy_process_group()
    assert not dist.is_initialized() and dist.get_world_size() == 1


def test_ddp_in_a_group_of_one_changes_nothing(group_of_one: None) -> None:
    gnn.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    twin = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    twin.load_state_dict(model.state_dict())
    ddp = DistributedDataParallel(model)
    x = gnn.randn(5, 3)
    ddp(x).sum().backward()
    twin(x).sum().backward()
    for p, q in zip(model.parameters(), twin.parameters()):
        np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy())
    assert list(ddp.state_dict()) == [f"module.{k}" for k in model.state_dict()]
    with ddp.no_sync():
        out = ddp(x)
    assert out.requires_grad


def test_errors_are_clear(group_of_one: None) -> None:
    with pytest.raises(RuntimeError, match="already initialized"):
        dist.init_process_group("mpi")
    with pytest.raises(ValueError, match="op must be one of"):
        dist.all_reduce(gnn.ones(2), "prod")
    with pytest.raises(TypeError, match="op='mean' needs a float"):
        dist.all_reduce(gnn.tensor([1, 2]), "mean")
    with pytest.raises(TypeError, match="expected a gnn.Tensor"):
        dist.all_reduce(np.ones(2))
    with pytest.raises(ValueError, match=r"src must be a rank in \[0, 1\)"):
        dist.broadcast(gnn.ones(2), 1)
    with pytest.raises(ValueError, match="list of world_size=1"):
        dist.all_gather([gnn.ones(2), gnn.ones(2)], gnn.ones(2))
    with pytest.raises(ValueError, match="tensor_list"):
        dist.all_gather([gnn.ones(3)], gnn.ones(2))
    with pytest.raises(ValueError, match="bucket_cap_mb"):
        DistributedDataParallel(nn.Linear(2, 2), bucket_cap_mb=0)
    with pytest.raises(TypeError, match="expected a gnn.nn.Module"):
        DistributedDataParallel(lambda x: x)


def test_errors_without_a_group() -> None:
    assert not dist.is_initialized()
    with pytest.raises(ValueError, match="backend must be 'mpi' or 'nccl'"):
        dist.init_process_group("gloo")
    with pytest.raises(RuntimeError, match="init_process_group"):
        dist.all_reduce(gnn.ones(2))
    with pytest.raises(RuntimeError, match="init_process_group"):
        dist.barrier()
    with pytest.raises(RuntimeError, match="init_process_group"):
        DistributedDataParallel(nn.Linear(2, 2))
    assert (dist.get_rank(), dist.get_world_size()) == (0, 1)


def test_nccl_without_a_gpu_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    if gnn.cuda_available():
        pytest.skip("a GPU is visible: the gpu-marked NCCL test covers this machine")
    for size, _, _ in dist._LAUNCHER_ENV:
        monkeypatch.delenv(size, raising=False)
    monkeypatch.setattr(dist, "is_available", lambda: False)  # no MPI in this process
    with pytest.raises(RuntimeError, match="no CUDA GPU is visible.*backend='mpi'"):
        dist.init_process_group("nccl")
    assert not dist.is_initialized()


def test_launcher_world_size_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for size, _, _ in dist._LAUNCHER_ENV:
        monkeypatch.delenv(size, raising=False)
    assert dist.launcher_world_size() == 1
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    assert dist.launcher_world_size() == 4
    monkeypatch.setenv("PMI_SIZE", "3")
    assert dist.launcher_world_size() == 3


def test_buckets_follow_reverse_order_cap_and_dtype() -> None:
    params = [
        nn.Parameter(gnn.zeros(1000)),  # 4000 bytes as float32
        nn.Parameter(gnn.zeros(1000)),
        nn.Parameter(gnn.zeros(10, dtype=gnn.float64)),
        nn.Parameter(gnn.zeros(500, dtype=gnn.float16)),  # averaged in float32: 2000 bytes
    ]
    buckets = DistributedDataParallel._make_buckets(params, cap=6000)
    assert [b.indices for b in buckets] == [[3], [2], [1], [0]]
    assert [str(b.dtype) for b in buckets] == ["float32", "float64", "float32", "float32"]
    buckets = DistributedDataParallel._make_buckets(params[:2] + params[3:], cap=6000)
    assert [b.indices for b in buckets] == [[2, 1], [0]]
    assert buckets[0].slices == [(0, 500), (500, 1500)]


# ---- DistributedSampler and DataLoader(sampler=) -------------------------------------------------


@pytest.mark.parametrize("n, world, drop_last", [(10, 3, False), (10, 3, True), (8, 2, False)])
def test_sampler_splits_one_permutation(n: int, world: int, drop_last: bool) -> None:
    data = list(range(n))
    parts = [
        list(DistributedSampler(data, world, r, shuffle=True, seed=4, drop_last=drop_last))
        for r in range(world)
    ]
    per = n // world if drop_last else -(-n // world)
    assert all(len(p) == per for p in parts)
    assert [len(DistributedSampler(data, world, r, drop_last=drop_last)) for r in range(world)] == [
        per
    ] * world
    merged = [i for k in range(per) for i in (p[k] for p in parts)]  # undo the striding
    order = np.random.default_rng(4).permutation(n).tolist()
    assert merged == (order[: per * world] if drop_last else np.resize(order, per * world).tolist())
    if not drop_last:
        assert set(merged) == set(data)  # every sample is seen; padding repeats the first ones


def test_sampler_epochs_and_no_shuffle() -> None:
    data = list(range(12))
    s = DistributedSampler(data, num_replicas=2, rank=1, shuffle=True, seed=0)
    first = list(s)
    assert list(s) == first  # the same epoch gives the same order
    s.set_epoch(1)
    assert list(s) != first
    assert list(DistributedSampler(data, 2, 0, shuffle=False)) == [0, 2, 4, 6, 8, 10]


def test_sampler_with_dataloader_gives_the_global_batches() -> None:
    x = np.arange(20, dtype=np.float32)[:, None]
    ds = TensorDataset(x)
    world, per_rank = 2, 3
    loaders = [
        DataLoader(ds, batch_size=per_rank, sampler=DistributedSampler(ds, world, r, seed=1))
        for r in range(world)
    ]
    assert [len(ld) for ld in loaders] == [4, 4]
    order = np.random.default_rng(1).permutation(20)
    for k, batches in enumerate(zip(*loaders)):
        together = sorted(float(v) for b in batches for v in b[0].numpy().ravel())
        assert together == sorted(order[k * 6 : (k + 1) * 6].astype(float).tolist())


def test_sampler_and_loader_reject_bad_arguments() -> None:
    data = list(range(4))
    with pytest.raises(ValueError, match="rank must be in"):
        DistributedSampler(data, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="num_replicas"):
        DistributedSampler(data, num_replicas=0, rank=0)
    with pytest.raises(ValueError, match="drop_last"):
        DistributedSampler(data[:1], num_replicas=2, rank=0, drop_last=True)
    with pytest.raises(ValueError, match="epoch"):
        DistributedSampler(data, 1, 0).set_epoch(-1)
    with pytest.raises(ValueError, match="shuffle=True exclude"):
        DataLoader(data, sampler=DistributedSampler(data, 1, 0), shuffle=True)
    with pytest.raises(TypeError, match="sampler must be"):
        DataLoader(data, sampler=5)
    assert DistributedSampler(data).num_replicas == 1  # no group: one replica


# ---- several processes ---------------------------------------------------------------------------


@needs_mpi
def test_ddp_two_ranks_give_the_full_batch_gradient(tmp_path: Path) -> None:
    script = str(SCRIPTS / "ddp_steps.py")
    ok(alone(script, str(tmp_path)))
    ok(ranks(2, script, str(tmp_path)))
    one = np.load(tmp_path / "ddp_1_0.npz")
    r0, r1 = np.load(tmp_path / "ddp_2_0.npz"), np.load(tmp_path / "ddp_2_1.npz")
    assert sorted(one.files) == sorted(r0.files) == sorted(r1.files)
    for group in ("grad0", "accum", "final", "heads", "sbn.grad0", "sbn"):
        assert any(k.startswith(group + ".") for k in one.files), group
    for key in one.files:
        # the same numbers on both ranks, to the bit; those of one process on the whole batch
        np.testing.assert_array_equal(r0[key], r1[key], err_msg=key)
        np.testing.assert_allclose(r0[key], one[key], rtol=0, atol=1e-6, err_msg=key)
    assert not any(k.startswith("heads.c.") for k in one.files)  # nobody used head c
    assert bool(r0["heads_c_is_none"]) and bool(one["heads_c_is_none"])
    # gradients really moved between ranks: each rank's head got the other's zeros averaged in
    assert np.abs(r0["heads.a.weight"]).max() > 0 and np.abs(r0["heads.b.weight"]).max() > 0


@needs_mpi
def test_fit_on_two_ranks_equals_fit_in_one_process(tmp_path: Path) -> None:
    script = str(SCRIPTS / "fit_ranks.py")
    single = ok(alone(script, str(tmp_path)))
    double = ok(ranks(2, script, str(tmp_path)))
    one = np.load(tmp_path / "fit_1_0.npz")
    r0, r1 = np.load(tmp_path / "fit_2_0.npz"), np.load(tmp_path / "fit_2_1.npz")
    for key in one.files:
        np.testing.assert_array_equal(r0[key], r1[key], err_msg=key)
        if key.startswith("param."):
            np.testing.assert_allclose(r0[key], one[key], rtol=0, atol=1e-6, err_msg=key)
    info = [json.loads((tmp_path / f"fit_{n}.json").read_text()) for n in ("1_0", "2_0", "2_1")]
    for name, values in info[0]["history"].items():
        np.testing.assert_allclose(info[1]["history"][name], values, rtol=1e-9, err_msg=name)
        assert info[1]["history"][name] == info[2]["history"][name]
    # rank 0 alone prints and writes checkpoints and the CSV log
    assert len(info[1]["saved"]) == 3 and info[2]["saved"] == []
    assert (tmp_path / "w2-log.csv").read_text().count("\n") == 4
    assert double.stdout.count("Epoch 1/3") == 1 and single.stdout.count("Epoch 1/3") == 1


@needs_mpi
@pytest.mark.parametrize("launch", ["python -m mpi4py", "python"])
def test_one_rank_raising_ends_the_job(launch: str) -> None:
    script = str(SCRIPTS / "fail_one_rank.py")
    if launch == "python":  # no mpi4py runner: gnn's own excepthook must abort
        result = run([MPIEXEC, "-n", "2", sys.executable, script], timeout=60)
    else:
        result = ranks(2, script, timeout=60)
    assert result.returncode != 0
    assert "planted failure on rank 1" in result.stderr
    assert "got past the collective" not in result.stdout


@needs_mpi
def test_checkpoint_from_two_ranks_resumes_on_one_and_two(tmp_path: Path) -> None:
    script = str(SCRIPTS / "resume.py")
    ok(ranks(2, script, "train", str(tmp_path)))
    assert (tmp_path / "ckpt.safetensors").exists()
    uninterrupted = np.load(tmp_path / "train_2.npy")
    ok(ranks(2, script, "resume", str(tmp_path)))
    np.testing.assert_array_equal(np.load(tmp_path / "resume_2.npy"), uninterrupted)
    ok(alone(script, "resume", str(tmp_path)))
    np.testing.assert_allclose(np.load(tmp_path / "resume_1.npy"), uninterrupted, atol=1e-9)
    assert not np.array_equal(uninterrupted, np.load(tmp_path / "resume_1.npy") + 1)


@needs_mpi
def test_gnn_train_digits_under_mpiexec(tmp_path: Path) -> None:
    saved = tmp_path / "digits.safetensors"
    args = ["-m", "gnn", "train", "digits", "--epochs", "1", "--save", str(saved)]
    result = ok(ranks(2, *args))
    assert result.stdout.count("done in") == 1  # rank 0 alone prints
    assert "2 ranks" in result.stdout and "test accuracy" in result.stdout
    assert saved.exists() and saved.with_suffix(".json").exists()


@needs_mpi
def test_gnn_train_bad_save_path_under_mpiexec_stops_every_rank(tmp_path: Path) -> None:
    bad = tmp_path / "missing" / "digits.safetensors"
    result = ranks(
        2, "-m", "gnn", "train", "digits", "--epochs", "1", "--save", str(bad), timeout=60
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("folder") == 1 and "does not exist" in result.stderr


@pytest.mark.gpu
@needs_mpi
def test_cuda_tensors_in_an_mpi_group(tmp_path: Path) -> None:
    """CUDA tensors over MPI (through host copies): collectives, and DDP on 2 ranks = 1 process.

    Runs on the fake CuPy too (GNN_FAKE_CUDA=1): the ranks inherit its PYTHONPATH.
    """
    if not gnn.cuda_available():
        pytest.skip("needs CuPy and a CUDA device")
    script = str(SCRIPTS / "cuda_over_mpi.py")
    ok(alone(script, "cuda", str(tmp_path)))
    ok(ranks(2, script, "cuda", str(tmp_path)))
    one = np.load(tmp_path / "cuda_1_0.npz")
    r0, r1 = np.load(tmp_path / "cuda_2_0.npz"), np.load(tmp_path / "cuda_2_1.npz")
    np.testing.assert_array_equal(r0["mean"], [1.5, -0.5])
    np.testing.assert_array_equal(r0["broadcast"], [1.0, 5.0])
    np.testing.assert_array_equal(r1["gathered"], [[0.0, 0.0], [1.0, 2.0]])
    for key in (k for k in one.files if k.startswith("param.")):
        np.testing.assert_array_equal(r0[key], r1[key], err_msg=key)
        np.testing.assert_allclose(r0[key], one[key], rtol=0, atol=1e-9, err_msg=key)


@pytest.mark.gpu
@needs_mpi
def test_nccl_backend_on_gpus(tmp_path: Path) -> None:
    """Collectives and DDP on NCCL, one rank per GPU (2 ranks when 2 GPUs are visible)."""
    if FAKE_CUDA:
        pytest.skip("NCCL needs real GPUs; the fake CuPy has no cupy.cuda.nccl")
    if not gnn.cuda_available():
        pytest.skip("needs CuPy and a CUDA device")
    if not _has_nccl():
        pytest.skip("CuPy has no NCCL here (pip install nvidia-nccl-cu12)")
    from gnn.backend.cuda import device_count

    n = min(2, device_count())
    out = tmp_path / "nccl.json"
    ok(ranks(n, str(SCRIPTS / "nccl_smoke.py"), str(out)))
    checks = json.loads(out.read_text())
    assert checks and all(checks.values()), checks


def _has_nccl() -> bool:
    try:
        from gnn.backend.nccl import _nccl

        _nccl()
    except RuntimeError:
        return False
    return True
