"""gnn.data samplers and DataLoader against PyTorch's behaviour, and DataLoader worker processes.

Samplers are compared with torch.utils.data where the result is deterministic (lengths, index
sets, batches, errors) and statistically where it is random (fixed seeds, wide tolerances).
Everything that starts worker processes runs in one child Python (WORKER_SCRIPT) under a
timeout that kills its whole process group, so a hang fails the tests instead of stalling CI.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter, namedtuple
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import gnn
from gnn.data import (
    BatchSampler,
    DataLoader,
    RandomSampler,
    SequentialSampler,
    SubsetRandomSampler,
    TensorDataset,
    WeightedRandomSampler,
    default_collate,
    get_worker_info,
)

ROOT = Path(__file__).resolve().parents[1]


def _torch() -> Any:
    return pytest.importorskip("torch")


# ---- samplers --------------------------------------------------------------------------------


def test_sequential_sampler_matches_torch() -> None:
    tdata = _torch().utils.data
    data = list(range(7))
    assert list(SequentialSampler(data)) == list(tdata.SequentialSampler(data))
    assert len(SequentialSampler(data)) == len(tdata.SequentialSampler(data)) == 7


@pytest.mark.parametrize("num_samples", [None, 5, 23])
def test_random_sampler_without_replacement_is_permutations(num_samples: int | None) -> None:
    torch = _torch()
    data = list(range(10))
    ours = list(RandomSampler(data, num_samples=num_samples, generator=3))
    theirs = [int(i) for i in torch.utils.data.RandomSampler(data, num_samples=num_samples)]
    assert len(ours) == len(theirs) == len(RandomSampler(data, num_samples=num_samples))
    # whole permutations one after another, the last one cut short: same counts as PyTorch's
    assert sorted(Counter(ours).values()) == sorted(Counter(theirs).values())
    for start in range(0, len(ours), 10):
        block = ours[start : start + 10]
        assert len(set(block)) == len(block) and set(block) <= set(data)


def test_random_sampler_with_replacement() -> None:
    torch = _torch()
    data = list(range(4))
    ours = list(RandomSampler(data, replacement=True, num_samples=4000, generator=0))
    theirs = list(torch.utils.data.RandomSampler(data, replacement=True, num_samples=4000))
    assert len(ours) == len(theirs) == 4000
    assert set(ours) == {int(i) for i in theirs} == set(data)
    counts = np.bincount(ours, minlength=4) / 4000
    np.testing.assert_allclose(counts, 0.25, atol=0.03)  # uniform, as PyTorch's
    # short runs repeat indices (a permutation would not): replacement is real
    assert any(len(set(ours[i : i + 4])) < 4 for i in range(0, 400, 4))


def test_random_sampler_follows_gnn_manual_seed_and_generators() -> None:
    data = list(range(30))
    gnn.manual_seed(5)
    s = RandomSampler(data)
    a1, a2 = list(s), list(s)
    gnn.manual_seed(5)
    b1, b2 = list(s), list(s)
    assert (a1, a2) == (b1, b2) and a1 != a2  # reproducible, and a new order each epoch
    seeded = [list(RandomSampler(data, generator=np.random.default_rng(9))) for _ in range(2)]
    assert seeded[0] == seeded[1]
    assert list(RandomSampler(data, generator=9)) == seeded[0]  # an int seed is the same stream


def test_subset_random_sampler_matches_torch() -> None:
    torch = _torch()
    idx = [3, 8, 1, 12, 5]
    ours = list(SubsetRandomSampler(idx, generator=1))
    theirs = [int(i) for i in torch.utils.data.SubsetRandomSampler(idx)]
    assert sorted(ours) == sorted(theirs) == sorted(idx)
    assert len(SubsetRandomSampler(idx)) == 5


def test_weighted_sampler_with_replacement_statistics() -> None:
    torch = _torch()
    w = [0.1, 0.0, 0.6, 0.3]
    n = 20000
    ours = np.bincount(list(WeightedRandomSampler(w, n, generator=42)), minlength=4) / n
    torch.manual_seed(42)
    theirs = np.bincount(
        [int(i) for i in torch.utils.data.WeightedRandomSampler(w, n)], minlength=4
    ) / n  # fmt: skip
    assert ours[1] == theirs[1] == 0.0  # a zero weight is never drawn
    np.testing.assert_allclose(ours, np.array(w) / sum(w), atol=0.015)
    np.testing.assert_allclose(ours, theirs, atol=0.02)


def test_weighted_sampler_without_replacement_matches_torch_inclusion() -> None:
    torch = _torch()
    w = [5.0, 1.0, 1.0, 3.0, 0.0, 2.0]
    trials = 3000
    first_ours, first_theirs = np.zeros(6), np.zeros(6)
    incl_ours, incl_theirs = np.zeros(6), np.zeros(6)
    rng = np.random.default_rng(7)
    torch.manual_seed(7)
    for _ in range(trials):
        a = list(WeightedRandomSampler(w, 3, replacement=False, generator=rng))
        b = [int(i) for i in torch.utils.data.WeightedRandomSampler(w, 3, replacement=False)]
        assert len(set(a)) == 3 and 4 not in a  # no repeats, zero weight never drawn
        first_ours[a[0]] += 1
        first_theirs[b[0]] += 1
        incl_ours[a] += 1
        incl_theirs[b] += 1
    # the first draw follows the weights; later draws the weights of what is left
    np.testing.assert_allclose(first_ours / trials, np.array(w) / sum(w), atol=0.03)
    np.testing.assert_allclose(incl_ours / trials, incl_theirs / trials, atol=0.04)


@pytest.mark.parametrize("n,bs,drop", [(10, 3, False), (10, 3, True), (9, 3, True), (2, 5, False)])
def test_batch_sampler_matches_torch(n: int, bs: int, drop: bool) -> None:
    tdata = _torch().utils.data
    ours = BatchSampler(SequentialSampler(range(n)), bs, drop)
    theirs = tdata.BatchSampler(tdata.SequentialSampler(range(n)), bs, drop)
    assert list(ours) == list(theirs)
    assert len(ours) == len(theirs)


BAD_SAMPLERS = [
    ("RandomSampler", lambda m: m.RandomSampler(range(3), replacement=1)),
    ("RandomSampler", lambda m: m.RandomSampler(range(3), num_samples=0)),
    ("RandomSampler", lambda m: m.RandomSampler([])),
    ("BatchSampler", lambda m: m.BatchSampler(range(3), 0, False)),
    ("BatchSampler", lambda m: m.BatchSampler(range(3), True, False)),
    ("BatchSampler", lambda m: m.BatchSampler(range(3), 2, "no")),
    ("WeightedRandomSampler", lambda m: m.WeightedRandomSampler([[1.0, 2.0]], 2)),
    ("WeightedRandomSampler", lambda m: m.WeightedRandomSampler([1.0, 2.0], 0)),
    ("WeightedRandomSampler", lambda m: m.WeightedRandomSampler([1.0, 2.0], 2, replacement=3)),
]


@pytest.mark.parametrize("case", range(len(BAD_SAMPLERS)))
def test_sampler_errors_are_pytorchs(case: int) -> None:
    tdata = _torch().utils.data
    _, make = BAD_SAMPLERS[case]
    with pytest.raises(Exception) as theirs:  # the type is what is compared
        make(tdata)
    with pytest.raises(type(theirs.value)):
        make(gnn.data)


def test_weighted_sampler_rejects_bad_weights() -> None:
    for w, msg in [
        ([1.0, -1.0], "non-negative"),
        ([0.0, 0.0], "all be zero"),
        ([np.nan], "finite"),
    ]:
        with pytest.raises(ValueError, match=msg):
            WeightedRandomSampler(w, 1)
    with pytest.raises(ValueError, match="without replacement"):
        WeightedRandomSampler([1.0, 0.0, 1.0], 3, replacement=False)
    with pytest.raises(TypeError, match="generator"):
        RandomSampler(range(3), generator="seed")


# ---- DataLoader arguments ----------------------------------------------------------------------

DS = list(range(8))

BAD_LOADERS = [
    dict(batch_sampler=[[0, 1]], batch_size=2),
    dict(batch_sampler=[[0, 1]], shuffle=True),
    dict(batch_sampler=[[0, 1]], sampler=[0, 1]),
    dict(batch_sampler=[[0, 1]], drop_last=True),
    dict(sampler=[0, 1], shuffle=True),
    dict(batch_size=None, drop_last=True),
    dict(num_workers=-1),
    dict(timeout=-1),
    dict(persistent_workers=True),
    dict(prefetch_factor=2),
]


@pytest.mark.parametrize("kwargs", BAD_LOADERS, ids=lambda kw: ",".join(kw))
def test_loader_argument_conflicts_raise_like_pytorch(kwargs: dict) -> None:
    tdata = _torch().utils.data
    with pytest.raises(ValueError):  # the same type as PyTorch's, checked here
        tdata.DataLoader(DS, **kwargs)
    with pytest.raises(ValueError) as ours:
        DataLoader(DS, **kwargs)
    assert "option" in str(ours.value) or "batch_size" in str(ours.value)


def test_loader_rejects_bad_types() -> None:
    with pytest.raises(TypeError, match="batch_sampler must be"):
        DataLoader(DS, batch_sampler=3)
    with pytest.raises(TypeError, match="collate_fn must be callable"):
        DataLoader(DS, collate_fn=3)
    with pytest.raises(ValueError, match="valid start method"):
        DataLoader(DS, num_workers=1, multiprocessing_context="teleport")
    with pytest.raises(ValueError, match="prefetch_factor"):
        DataLoader(DS, num_workers=1, prefetch_factor=0)


def test_batch_sampler_and_samplers_in_the_loader() -> None:
    x = np.arange(10) * 10
    ds = TensorDataset(x)
    got = [b[0].numpy().tolist() for b in DataLoader(ds, batch_sampler=[[3, 1], [0, 9, 2]])]
    assert got == [[30, 10], [0, 90, 20]]
    loader = DataLoader(ds, batch_size=4, sampler=SubsetRandomSampler([1, 2, 5], generator=0))
    assert len(loader) == 1
    assert sorted(next(iter(loader))[0].numpy().tolist()) == [10, 20, 50]
    weighted = DataLoader(ds, batch_size=5, sampler=WeightedRandomSampler([0] * 9 + [1], 10))
    assert [b[0].numpy().tolist() for b in weighted] == [[90] * 5, [90] * 5]


def test_no_batching_converts_samples_like_pytorch() -> None:
    torch = _torch()
    data = [(np.arange(3, dtype=np.float32) + i, i, np.int64(i)) for i in range(4)]
    ours = list(DataLoader(data, batch_size=None))
    theirs = list(torch.utils.data.DataLoader(data, batch_size=None))
    assert len(ours) == len(theirs) == 4
    for (x, i, n), (tx, ti, tn) in zip(ours, theirs):
        assert isinstance(x, gnn.Tensor) and isinstance(tx, torch.Tensor)
        np.testing.assert_array_equal(x.numpy(), tx.numpy())
        assert i == ti and isinstance(i, int)
        assert isinstance(n, gnn.Tensor) and isinstance(tn, torch.Tensor) and n.item() == tn.item()
    assert [s.tolist() for s in DataLoader(data, batch_size=None, collate_fn=lambda s: s[0])] == [
        list(np.arange(3.0) + i) for i in range(4)
    ]


def test_shuffled_loader_follows_manual_seed_and_generator_seed() -> None:
    ds = TensorDataset(np.arange(40))

    def orders(**kw: Any) -> list:
        loader = DataLoader(ds, batch_size=7, shuffle=True, **kw)
        return [np.concatenate([b[0].numpy() for b in loader]).tolist() for _ in range(2)]

    gnn.manual_seed(11)
    a = orders()
    gnn.manual_seed(11)
    assert orders() == a and a[0] != a[1] and sorted(a[0]) == list(range(40))
    assert orders(generator=4) == orders(generator=4)


# ---- collation -----------------------------------------------------------------------------------

Point = namedtuple("Point", ["xy", "label"])


def test_default_collate_matches_torch_values() -> None:
    torch = _torch()
    samples = [
        {"p": Point(np.array([i, -i], np.float32), i), "w": float(i) / 2, "name": f"s{i}"}
        for i in range(3)
    ]
    ours = default_collate(samples)
    theirs = torch.utils.data.default_collate(samples)
    assert isinstance(ours["p"], Point)
    np.testing.assert_array_equal(ours["p"].xy.numpy(), theirs["p"].xy.numpy())
    np.testing.assert_array_equal(ours["p"].label.numpy(), theirs["p"].label.numpy())
    assert ours["p"].label.dtype == np.int64
    np.testing.assert_allclose(ours["w"].numpy(), theirs["w"].numpy())
    assert ours["name"] == theirs["name"] == ["s0", "s1", "s2"]
    tensors = default_collate([gnn.tensor([1.0, 2.0]), gnn.tensor([3.0, 4.0])])
    np.testing.assert_array_equal(tensors.numpy(), [[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(ValueError, match="different numbers of fields"):
        default_collate([(1, 2), (1,)])
    with pytest.raises(TypeError, match="collate_fn"):
        default_collate([np.array(["a"], dtype=object)])


def test_loader_keeps_tensors_on_their_device(device: str) -> None:
    x = gnn.tensor(np.arange(12.0, dtype=np.float32).reshape(6, 2), device=device)
    gnn.manual_seed(2)
    batches = list(DataLoader(TensorDataset(x), batch_size=4, shuffle=True))
    assert [b[0].device.type for b in batches] == [device, device]
    got = np.concatenate([b[0].numpy() for b in batches])
    np.testing.assert_array_equal(np.sort(got[:, 0]), x.numpy()[:, 0])
    stacked = default_collate([x[0], x[1]])
    assert stacked.device.type == device and stacked.shape == (2, 2)
    if device != "cpu":
        with pytest.raises(ValueError, match="CPU only"):
            DataLoader(TensorDataset(x), num_workers=2)


def test_utils_data_alias_has_the_new_names() -> None:
    import gnn.utils.data as ud

    for name in (
        "Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler",
        "WeightedRandomSampler", "BatchSampler", "get_worker_info", "default_convert",
    ):  # fmt: skip
        assert getattr(ud, name) is getattr(gnn.data, name)
    assert get_worker_info() is None  # not in a worker


# ---- worker processes (in a child Python under a timeout) ---------------------------------------

WORKER_SCRIPT = r'''
import json, multiprocessing as mp, os, random, sys, time
import numpy as np
import gnn
from gnn.data import DataLoader, Dataset, TensorDataset, get_worker_info


class Samples(Dataset):
    """Sample i: its index, the worker that made it, and draws from three seeded generators."""

    def __init__(self, n=22, bad=None, slow=None, draw=True, die=None):
        self.n, self.bad, self.slow, self.draw, self.die = n, bad, slow, draw, die

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i == self.bad:
            raise ValueError(f"bad sample {i}")
        if i == self.die:
            os._exit(3)
        if i == self.slow:
            time.sleep(1.0)
        info = get_worker_info()
        return {
            "i": np.float64(i), "x": np.full(3, i, np.float32), "pid": os.getpid(),
            "worker": -1 if info is None else info.id,
            "seed": -1 if info is None else info.seed % 1000003,
            "draws": np.array([random.random(), np.random.rand(), gnn.rand(1).item()])
            if self.draw else np.zeros(3),
            "tag": TAG.get("tag", "none"),
        }


TAG = {}


def init_fn(worker_id):
    TAG["tag"] = f"init{worker_id}:{get_worker_info().id}"


def bad_init(worker_id):
    raise KeyError("no init for you")


def by_index(batch):  # a custom collate_fn: (index, tag) pairs
    return [[int(s["i"]), s["tag"]] for s in batch]


def table(loader):
    """Everything the loader gives in one epoch, as plain lists."""
    out = []
    for b in loader:
        if not isinstance(b, dict):
            out.append(b)
        else:
            row = {k: (v.numpy().tolist() if hasattr(v, "numpy") else v) for k, v in b.items()}
            out.append(dict(row, dtype=str(b["i"].dtype)))
    return out


def field(epoch, name):
    return [v for b in epoch for v in b[name]]


def loader_of(dataset, **kw):
    return DataLoader(dataset, **dict(dict(batch_size=2, num_workers=2), **kw))


def expect_error(fn):
    try:
        fn()
    except Exception as e:
        return [type(e).__name__, str(e)]
    return None


def main():
    res = {}
    ds = Samples()
    plain = Samples(draw=False)  # draws in the main process would move gnn's generator
    # order: shuffled under one seed, two epochs, workers vs none (twice: seeding)
    runs = []
    for w in (0, 2, 2):
        gnn.manual_seed(3)
        loader = DataLoader(ds if w else plain, batch_size=4, shuffle=True, num_workers=w)
        runs.append([table(loader), table(loader)])
        res["children_after_epoch"] = len(mp.active_children())
    res["order"] = [[field(e, "i") for e in run] for run in runs]
    res["x_equal"] = [field(e, "x") for e in runs[0]] == [field(e, "x") for e in runs[1]]
    res["dtypes"] = runs[1][0][0]["dtype"]
    res["workers_used"] = sorted(set(field(runs[1][0], "worker")))
    # seeding: the same gnn.manual_seed gives the same draws in the workers
    strip = lambda run: [[{k: v for k, v in b.items() if k != "pid"} for b in e] for e in run]
    res["seed_same"] = strip(runs[1]) == strip(runs[2])
    draws = [tuple(d) for e in runs[1] for d in field(e, "draws")]
    res["draws_distinct"] = len(set(draws)) == len(draws)
    res["seeds"] = sorted(set(zip(field(runs[1][0], "worker"), field(runs[1][0], "seed"))))
    res["epoch_seeds_differ"] = field(runs[1][0], "seed") != field(runs[1][1], "seed")
    # a custom collate_fn, and worker_init_fn running in each worker after get_worker_info is set
    res["custom"] = [
        table(DataLoader(ds, batch_size=5, collate_fn=by_index, num_workers=w, worker_init_fn=f))
        for w, f in ((0, None), (2, init_fn))
    ]
    res["unbatched"] = [
        [int(s["i"]) for s in DataLoader(ds, batch_size=None, num_workers=w)] for w in (0, 2)
    ]
    # errors: in a sample, in worker_init_fn, an unpicklable collate_fn, a timeout
    res["sample_error"] = expect_error(lambda: table(loader_of(Samples(bad=9))))
    res["children_after_error"] = len(mp.active_children())
    res["init_error"] = expect_error(lambda: table(loader_of(ds, worker_init_fn=bad_init)))
    res["pickle_error"] = expect_error(lambda: table(loader_of(ds, collate_fn=lambda b: b)))
    fork = loader_of(ds, batch_size=11, collate_fn=lambda b: len(b), multiprocessing_context="fork")
    res["fork_lambda"] = table(fork)
    res["timeout"] = expect_error(lambda: table(loader_of(Samples(slow=1), timeout=0.2)))
    res["children_after_timeout"] = len(mp.active_children())
    res["death"] = expect_error(lambda: table(loader_of(Samples(die=5))))
    res["children_after_death"] = len(mp.active_children())
    # shutdown of a half-read iterator on del
    it = iter(DataLoader(ds, batch_size=2, num_workers=2))
    next(it)
    res["children_while_reading"] = len(mp.active_children())
    del it
    res["children_after_del"] = len(mp.active_children())
    # persistent workers: the same processes every epoch, a half-read epoch dropped cleanly
    loader = DataLoader(ds, batch_size=4, num_workers=2, persistent_workers=True)
    pids = [set(field(table(loader), "pid")) for _ in range(2)]
    half = iter(loader)
    next(half)
    again = table(loader)
    res["persistent"] = [len(pids[0]), pids[0] == pids[1], set(field(again, "pid")) == pids[0]]
    res["persistent_order"] = field(again, "i")
    res["children_persistent"] = len(mp.active_children())
    del loader, half
    res["children_after_persistent"] = len(mp.active_children())
    print("RESULT" + json.dumps(res))


if __name__ == "__main__":
    main()
'''


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Run WORKER_SCRIPT once (about 5 s on two cores) and return its results by scenario."""
    script = tmp_path_factory.mktemp("loader") / "worker_scenarios.py"
    script.write_text(WORKER_SCRIPT)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # its own process group: a timeout kills workers too
    )
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"the worker scenarios did not finish in 120 s:\n{out}\n{err}")
    lines = [ln for ln in out.splitlines() if ln.startswith("RESULT")]
    assert proc.returncode == 0 and lines, f"exit {proc.returncode}\n{out}\n{err}"
    return json.loads(lines[-1][len("RESULT") :])


def test_workers_return_batches_in_order(workers: dict) -> None:
    no_workers, with_workers, again = workers["order"]
    assert with_workers == no_workers == again  # both epochs, the same shuffled order
    assert no_workers[0] != no_workers[1] and sorted(no_workers[0]) == list(range(22))
    assert workers["x_equal"]
    assert workers["dtypes"] == "float32"  # float64 samples become the default dtype there too
    assert workers["workers_used"] == [0, 1]
    no_workers, with_workers = workers["custom"]
    assert [[i for i, _ in b] for b in no_workers] == [[i for i, _ in b] for b in with_workers]
    assert [[i for i, _ in b] for b in with_workers] == [
        list(range(s, min(s + 5, 22))) for s in range(0, 22, 5)
    ]
    assert workers["unbatched"][0] == workers["unbatched"][1] == list(range(22))


def test_workers_are_seeded(workers: dict) -> None:
    assert workers["seed_same"]  # same gnn.manual_seed, same draws in the workers
    assert workers["draws_distinct"]  # workers do not repeat each other's random streams
    (w0, s0), (w1, s1) = workers["seeds"]
    assert (w0, w1) == (0, 1) and s1 == (s0 + 1) % 1000003  # seed = base + worker id
    assert workers["epoch_seeds_differ"]  # a new base seed each epoch


def test_worker_init_fn_runs_in_each_worker(workers: dict) -> None:
    no_workers, with_workers = workers["custom"]
    assert {tag for b in no_workers for _, tag in b} == {"none"}
    # batch k comes from worker k % 2, whose worker_init_fn(k % 2) ran there
    assert [{tag for _, tag in b} for b in with_workers] == [
        {f"init{k % 2}:{k % 2}"} for k in range(len(with_workers))
    ]


def test_worker_errors_reach_the_main_process(workers: dict) -> None:
    kind, msg = workers["sample_error"]
    assert kind == "ValueError" and "bad sample 9" in msg
    assert "Traceback" in msg and "__getitem__" in msg and "worker process" in msg
    kind, msg = workers["init_error"]
    assert kind == "KeyError" and "no init for you" in msg and "worker_init_fn" in msg
    kind, msg = workers["pickle_error"]
    assert kind == "TypeError" and "multiprocessing_context='fork'" in msg
    assert workers["fork_lambda"] == [11, 11]
    kind, msg = workers["timeout"]
    assert kind == "RuntimeError" and "timed out" in msg
    kind, msg = workers["death"]
    assert kind == "RuntimeError" and "exited unexpectedly with exit code 3" in msg


def test_no_worker_outlives_its_iterator(workers: dict) -> None:
    assert workers["children_while_reading"] == 2  # the check can see live workers
    for when in ("epoch", "error", "timeout", "death", "del", "persistent"):
        assert workers[f"children_after_{when}"] == 0, when


def test_persistent_workers_are_reused(workers: dict) -> None:
    count, same, same_after_abandoned = workers["persistent"]
    assert count == 2 and same and same_after_abandoned
    assert workers["persistent_order"] == list(range(22))  # no batch of the dropped epoch
    assert workers["children_persistent"] == 2
