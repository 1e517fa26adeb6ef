"""CUDA graphs: gnn.cuda.CUDAGraph / graph(), GraphedStep, and the fake CuPy's model of capture.

The gpu-marked tests run on the fake CuPy (GNN_FAKE_CUDA=1), whose capture records work without
running it and whose replay runs the record on the same buffers (tests/fake_gpu/cupy/_graphs.py);
on a machine with a GPU they run on CuPy itself.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import numpy as np
import pytest

import gnn
import gnn.cuda
import gnn.functional as F
from gnn import nn, optim
from gnn.models import GPT, GPTConfig
from gnn.tensor import Tensor
from gnn.train.cuda_graph import GraphedStep

gpu = pytest.mark.gpu


@pytest.fixture
def cuda() -> None:
    if not gnn.cuda.is_available():
        pytest.skip("needs CuPy and a CUDA device")


def _cupy():
    import cupy

    return cupy


def _counting():
    """cupy.counting() on the fake CuPy; skips on a real GPU (launch counts are the fake's)."""
    cupy = _cupy()
    if not getattr(cupy, "FAKE", False):
        pytest.skip("launch counts come from the fake CuPy")
    return cupy.counting()


def _same(got: object, want: object, what: str = "") -> None:
    """Bit for bit on the fake CuPy; on a GPU within float32 rounding, since atomic adds (the
    embedding's backward) sum in a different order from run to run there."""
    if getattr(_cupy(), "FAKE", False):
        np.testing.assert_array_equal(got, want, err_msg=what)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=what)


# ---- without a GPU ------------------------------------------------------------------------------


def test_cuda_graph_without_a_gpu_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gnn.cuda, "is_available", lambda: False)
    for make in (gnn.cuda.CUDAGraph, gnn.cuda.Stream, gnn.cuda.current_stream):
        with pytest.raises(RuntimeError, match=r"needs a CUDA GPU.*on the CPU"):
            make()
    assert gnn.cuda.is_current_stream_capturing() is False


def test_graphed_step_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="warmup"):
        GraphedStep(lambda x: x, warmup=0)


# ---- the fake's capture and replay, through gnn.cuda --------------------------------------------


@gpu
def test_capture_runs_nothing_and_replay_runs_it_all(cuda: None) -> None:
    x = gnn.tensor(np.arange(6, dtype=np.float32), device="cuda")
    _ = x * 2.0 + 1.0  # warm-up: the 2.0 and 1.0 are copied to the device once, not in capture
    g = gnn.cuda.CUDAGraph()
    with gnn.cuda.graph(g):
        assert gnn.cuda.is_current_stream_capturing()
        y = x * 2.0 + 1.0
        x.array[...] += 1.0  # an in-place update, captured as well
    assert not gnn.cuda.is_current_stream_capturing()
    # nothing ran: x as before, y not computed (garbage on a GPU, NaN on the fake)
    np.testing.assert_array_equal(x.numpy(), np.arange(6))
    if getattr(_cupy(), "FAKE", False):
        assert np.isnan(y.numpy()).all()
    g.replay()
    np.testing.assert_array_equal(y.numpy(), 2 * np.arange(6) + 1)
    np.testing.assert_array_equal(x.numpy(), np.arange(6) + 1)
    g.replay()  # again, on the same buffers: y reads the x the first replay left
    np.testing.assert_array_equal(y.numpy(), 2 * (np.arange(6) + 1) + 1)
    np.testing.assert_array_equal(x.numpy(), np.arange(6) + 2)


@gpu
def test_a_replay_is_one_launch(cuda: None) -> None:
    x = gnn.tensor(np.ones((4, 3), dtype=np.float32), device="cuda")
    _ = (x * 3.0).sum() + x.mean()  # warm-up
    g = gnn.cuda.CUDAGraph()
    with gnn.cuda.graph(g):
        y = (x * 3.0).sum() + x.mean()
    with _counting() as eager:
        _ = (x * 3.0).sum() + x.mean()
    with _counting() as c:
        g.replay()
    assert (c.launches, c.syncs, c.allocs, c.h2d) == (1, 0, 0, 0)
    assert c.bytes == eager.bytes  # the kernels inside move what they move when run one by one
    assert y.item() == pytest.approx(37.0)


@gpu
@pytest.mark.parametrize(
    "read",
    [
        lambda t: t.sum().item(),
        lambda t: t.numpy(),
        lambda t: gnn.cuda.synchronize(),
        lambda t: float(t.array.sum()),
    ],
    ids=["item", "numpy", "synchronize", "float"],
)
def test_a_sync_during_capture_raises_as_cuda_does(cuda: None, read: Callable) -> None:
    if not getattr(_cupy(), "FAKE", False):
        pytest.skip("on a GPU this invalidates the capture for good: the fake checks the rule")
    x = gnn.tensor(np.ones(3, dtype=np.float32), device="cuda")
    _ = x * 2.0  # warm-up
    g = gnn.cuda.CUDAGraph()
    with pytest.raises(RuntimeError, match="cudaErrorStreamCaptureUnsupported"):
        with gnn.cuda.graph(g):
            read(x * 2.0)
    # the capture ended (invalidated) and nothing is left capturing
    assert not gnn.cuda.is_current_stream_capturing()
    with pytest.raises(RuntimeError, match="not captured"):
        g.replay()


@gpu
def test_the_fake_says_invalidated_when_the_sync_error_is_swallowed(cuda: None) -> None:
    if not getattr(_cupy(), "FAKE", False):
        pytest.skip("the fake's rule")
    x = gnn.tensor(np.ones(3, dtype=np.float32), device="cuda")
    _ = x * 2.0  # warm-up
    g = gnn.cuda.CUDAGraph()
    with pytest.raises(RuntimeError, match="cudaErrorStreamCaptureInvalidated"):
        with gnn.cuda.graph(g):
            try:
                x.numpy()
            except RuntimeError:
                pass
            _ = x * 2.0


@gpu
def test_a_host_to_device_copy_during_capture_raises(cuda: None) -> None:
    if not getattr(_cupy(), "FAKE", False):
        pytest.skip("the fake's rule")
    x = gnn.tensor(np.ones(3, dtype=np.float32), device="cuda")
    g = gnn.cuda.CUDAGraph()
    with pytest.raises(RuntimeError, match="host-to-device copy during stream capture"):
        with gnn.cuda.graph(g):
            x.copy_(np.arange(3, dtype=np.float32))


@gpu
def test_allocation_outside_the_graphs_pool_raises(cuda: None) -> None:
    cupy = _cupy()
    if not getattr(cupy, "FAKE", False):
        pytest.skip("the fake's rule")
    x = cupy.ones(3, dtype=np.float32)
    s = cupy.cuda.Stream(non_blocking=True)
    with s:
        s.begin_capture()
        with pytest.raises(RuntimeError, match="default memory pool"):
            _ = x * 2
        with pytest.raises(RuntimeError, match="cudaErrorStreamCaptureInvalidated"):
            s.end_capture()
        s.begin_capture(cupy.cuda.runtime.streamCaptureModeGlobal)
        with cupy.cuda.using_allocator(cupy.get_default_memory_pool().malloc):
            with pytest.raises(RuntimeError, match="cudaMalloc .* global"):
                _ = x * 2
        with pytest.raises(RuntimeError, match="Invalidated"):
            s.end_capture()


@gpu
def test_capture_on_the_default_stream_is_refused(cuda: None) -> None:
    g = gnn.cuda.CUDAGraph()
    with pytest.raises(RuntimeError, match="other than the default"):
        g.capture_begin()


@gpu
def test_graphs_sharing_a_pool_keep_their_memory(cuda: None) -> None:
    x = gnn.tensor(np.full(4, 2.0, dtype=np.float32), device="cuda")
    _ = x * x + 1.0  # warm-up
    pool = gnn.cuda.graph_pool_handle()
    first, second = gnn.cuda.CUDAGraph(), gnn.cuda.CUDAGraph()
    with gnn.cuda.graph(first, pool=pool):
        y = x * x
    with gnn.cuda.graph(second, pool=first.pool()):
        z = y + 1.0
    assert first.pool() is second.pool() is pool
    first.replay()
    second.replay()
    np.testing.assert_array_equal(z.numpy(), np.full(4, 5.0))
    first.reset()
    with pytest.raises(RuntimeError, match="not captured"):
        first.replay()


# ---- GraphedStep: a whole training step ---------------------------------------------------------


def _adam_steps_on_device() -> bool:
    """Whether Adam keeps its step count (so its bias corrections) in device memory, where a
    replay advances it; host numbers instead would be baked into the graph at capture."""
    try:
        fused = importlib.import_module("gnn.backend.fused.optim")
    except ImportError:
        return False
    return hasattr(fused, "DeviceClock")


def _mlp(opt_name: str) -> tuple[nn.Module, Callable[..., Tensor]]:
    gnn.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 4)).to("cuda")
    opt = (
        optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        if opt_name == "sgd"
        else optim.Adam(model.parameters(), lr=1e-2)
    )

    def step(x: Tensor, y: Tensor) -> Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    step.optimizer = opt  # type: ignore[attr-defined]
    return model, step


def _gpt(opt_name: str) -> tuple[nn.Module, Callable[..., Tensor]]:
    gnn.manual_seed(0)
    config = GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16, dropout=0.0)
    model = GPT(config).to("cuda")
    opt = optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)

    def step(x: Tensor, y: Tensor) -> Tensor:
        opt.zero_grad()
        _, loss = model(x, y)
        loss.backward()
        opt.step()
        return loss

    return model, step


def _batches(kind: str, n: int) -> list[tuple[Tensor, Tensor]]:
    rng = np.random.default_rng(1)
    if kind == "mlp":
        return [
            (
                gnn.tensor(rng.standard_normal((5, 6)).astype(np.float32), device="cuda"),
                gnn.tensor(rng.integers(0, 4, 5), device="cuda"),
            )
            for _ in range(n)
        ]
    ids = [rng.integers(0, 11, (2, 9)) for _ in range(n)]
    return [
        (gnn.tensor(i[:, :-1], device="cuda"), gnn.tensor(i[:, 1:], device="cuda")) for i in ids
    ]


@gpu
@pytest.mark.parametrize(
    ("model_kind", "opt_name"), [("mlp", "sgd"), ("mlp", "adam"), ("gpt", "adamw")]
)
def test_graphed_steps_train_bit_for_bit_as_eager_steps(
    cuda: None, model_kind: str, opt_name: str
) -> None:
    if opt_name != "sgd" and not _adam_steps_on_device():
        pytest.skip("Adam's bias corrections are host numbers here: a capture would bake them in")
    make = _mlp if model_kind == "mlp" else _gpt
    warmup, steps = 2, 7  # 2 eager, 1 capture + replay, 4 replays
    batches = _batches(model_kind, steps)
    eager_model, eager_step = make(opt_name)
    eager = [eager_step(x, y).item() for x, y in batches]
    graphed_model, graphed_step = make(opt_name)
    step = GraphedStep(graphed_step, warmup=warmup)
    graphed = [step(x, y).item() for x, y in batches]
    assert step.graph is not None and step.calls == steps
    _same(graphed, eager)
    untrained, _ = make(opt_name)
    for (name, a), b, c in zip(
        eager_model.named_parameters(), graphed_model.parameters(), untrained.parameters()
    ):
        _same(b.numpy(), a.numpy(), name)
        assert not np.array_equal(b.numpy(), c.numpy()), f"{name} did not train"


@gpu
@pytest.mark.parametrize("model_kind", ["mlp", "embedding"])
def test_a_replayed_step_is_one_launch_and_no_sync(cuda: None, model_kind: str) -> None:
    if model_kind == "mlp":
        train_step, batches = _mlp("sgd")[1], _batches("mlp", 4)
    else:  # its id checks are bookkept around the replay, with no launch of their own
        y = gnn.tensor(np.array([0, 1, 2]), device="cuda")
        ids = [gnn.tensor(np.array([i, 3, 6]), device="cuda") for i in range(4)]
        train_step, batches = _embedding_step(), [(i, y) for i in ids]
    step = GraphedStep(train_step, warmup=1)
    for x, y in batches[:2]:
        step(x, y)  # warm-up, then capture + replay
    for x, y in batches[2:]:
        with _counting() as c:
            step(x, y)
        # one launch for the graph, a copy into each static input; nothing read back or allocated
        assert c.by_name() == {"setitem": 2, "graph launch": 1}
        assert (c.syncs, c.allocs, c.h2d) == (0, 0, 0)
    with _counting() as c:
        step.graph.replay()
    assert c.launches == 1


@gpu
def test_graphed_step_returns_the_static_loss(cuda: None) -> None:
    _, train_step = _mlp("sgd")
    step = GraphedStep(train_step, warmup=1)
    batches = _batches("mlp", 4)
    losses = [step(x, y) for x, y in batches]
    assert losses[1] is losses[2] is losses[3] is step.static_loss
    assert losses[0] is not losses[1]


@gpu
@pytest.mark.parametrize(("model_kind", "opt_name"), [("mlp", "sgd"), ("gpt", "adamw")])
def test_a_batch_of_another_shape_runs_eagerly(cuda: None, model_kind: str, opt_name: str) -> None:
    if opt_name != "sgd" and not _adam_steps_on_device():
        pytest.skip("Adam's bias corrections are host numbers here: a capture would bake them in")
    make = _mlp if model_kind == "mlp" else _gpt
    batches = _batches(model_kind, 5)
    small = (batches[0][0][:1], batches[0][1][:1])  # the last, smaller batch of an epoch
    order = [batches[0], small, batches[1], batches[2], small, batches[3], batches[4]]
    eager_model, eager_step = make(opt_name)
    graphed_model, train_step = make(opt_name)
    step = GraphedStep(train_step, warmup=1)
    for x, y in order:
        _same(step(x, y).item(), eager_step(x, y).item())
    assert (step.calls, step.eager_steps) == (5, 2) and step.graph is not None
    for a, b in zip(eager_model.parameters(), graphed_model.parameters()):
        _same(b.numpy(), a.numpy())
    with pytest.raises(ValueError, match="3 batch tensors"):
        step(x, y, y)


@gpu
def test_graphed_step_takes_a_batch_from_the_host(cuda: None) -> None:
    _, eager_step = _mlp("sgd")
    _, train_step = _mlp("sgd")
    step = GraphedStep(train_step, warmup=1)
    for x, y in _batches("mlp", 3):
        want = eager_step(x, y).item()
        _same(step(x.to("cpu"), y.to("cpu")).item(), want)


@gpu
def test_a_step_that_reads_the_loss_cannot_be_captured(cuda: None) -> None:
    if not getattr(_cupy(), "FAKE", False):
        pytest.skip("the fake's rule (a GPU invalidates the capture)")
    _, train_step = _mlp("sgd")
    seen: list[float] = []

    def logging_step(x: Tensor, y: Tensor) -> Tensor:
        loss = train_step(x, y)
        seen.append(loss.item())  # a sync: fine eagerly, not in a graph
        return loss

    step = GraphedStep(logging_step, warmup=1)
    batches = _batches("mlp", 2)
    step(*batches[0])
    with pytest.raises(RuntimeError, match="cudaErrorStreamCaptureUnsupported"):
        step(*batches[1])


@gpu
def test_a_new_host_number_in_capture_is_refused(cuda: None) -> None:
    if not getattr(_cupy(), "FAKE", False):
        pytest.skip("the fake's rule")
    x = gnn.tensor(np.ones(3, dtype=np.float32), device="cuda")
    g = gnn.cuda.CUDAGraph()
    # x * 7.0 copies the 7.0 to the device the first time: a warm-up does that before capture
    with pytest.raises(RuntimeError, match="host-to-device copy during stream capture"):
        with gnn.cuda.graph(g):
            _ = x * 7.0


def _embedding_step() -> Callable[..., Tensor]:
    gnn.manual_seed(0)
    model = nn.Sequential(nn.Embedding(7, 4), nn.Linear(4, 3)).to("cuda")
    opt = optim.SGD(model.parameters(), lr=0.1)

    def step(ids: Tensor, y: Tensor) -> Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(model(ids), y)
        loss.backward()
        opt.step()
        return loss

    return step


@gpu
@pytest.mark.parametrize("check_every_step", [True, False])
def test_replayed_steps_still_report_bad_ids_and_labels(cuda: None, check_every_step: bool) -> None:
    step = GraphedStep(_embedding_step(), warmup=1)
    y = gnn.tensor(np.array([0, 1, 2]), device="cuda")
    good = gnn.tensor(np.array([0, 3, 6]), device="cuda")
    for _ in range(3):  # warm-up, capture + replay, replay
        loss = step(good, y)
        if check_every_step:
            loss.item()
    loss = step(gnn.tensor(np.array([0, 9, 6]), device="cuda"), y)  # id 9 of 7: out of range
    step(good, y)  # a later good step does not hide it
    with pytest.raises(IndexError, match="9"):
        loss.item()
    loss = step(good, y)
    assert np.isfinite(loss.item())  # reported once, then clean again
    step(good, gnn.tensor(np.array([0, 5, 2]), device="cuda"))  # label 5 of 3 classes
    with pytest.raises(IndexError, match="target 5 is out of bounds"):
        loss.item()


@gpu
def test_capture_error_mode_is_checked(cuda: None) -> None:
    g = gnn.cuda.CUDAGraph()
    with pytest.raises(ValueError, match="capture_error_mode.*'strict'"):
        with gnn.cuda.graph(g, capture_error_mode="strict"):
            pass
    x = gnn.tensor(np.ones(3, dtype=np.float32), device="cuda")
    _ = x * 2.0
    if getattr(_cupy(), "FAKE", False):  # global mode: the fake counts every allocation a malloc
        with pytest.raises(RuntimeError, match="global"):
            with gnn.cuda.graph(gnn.cuda.CUDAGraph(), capture_error_mode="global"):
                _ = x * 2.0


@gpu
def test_the_fake_refuses_work_on_other_streams_during_capture(cuda: None) -> None:
    cupy = _cupy()
    if not getattr(cupy, "FAKE", False):
        pytest.skip("the fake's rules")
    x = cupy.ones(3, dtype=np.float32)
    blocking = cupy.cuda.Stream()
    blocking.begin_capture()
    with pytest.raises(RuntimeError, match="cudaErrorStreamCaptureImplicit"):
        _ = x + 1  # on the legacy stream, which waits for the blocking capturing stream
    with pytest.raises(RuntimeError, match="Invalidated"):
        blocking.end_capture()
    side, other = cupy.cuda.Stream(non_blocking=True), cupy.cuda.Stream(non_blocking=True)
    side.begin_capture()
    with other, pytest.raises(RuntimeError, match="queue it before or after the capture"):
        _ = x + 1
    with pytest.raises(RuntimeError, match="cudaErrorStreamCaptureUnsupported"):
        cupy.cuda.Device().synchronize()
    with pytest.raises(RuntimeError, match="Invalidated"):
        side.end_capture()


_LR_CASES = {  # optimizer, and whether its updates read lr from device memory (flat kernels)
    "sgd": (lambda p: optim.SGD(p, lr=0.1, momentum=0.9), True),
    "adamw": (lambda p: optim.AdamW(p, lr=1e-2, weight_decay=0.1), True),
    "adam-1by1": (lambda p: optim.Adam(p, lr=1e-2, foreach=False), False),
    "nadam": (lambda p: optim.NAdam(p, lr=1e-2), False),
}


@gpu
@pytest.mark.parametrize("opt_name", list(_LR_CASES))
@pytest.mark.parametrize("how", ["reset", "watched optimizer", "nothing"])
def test_a_new_learning_rate_reaches_the_replays(cuda: None, opt_name: str, how: str) -> None:
    """A scheduler's new lr: where every update reads lr from device memory (the flat path's
    kernels) GraphedStep writes it there and replays on; elsewhere (lr a host number in the
    graph) it captures anew. Either way the steps are eager steps', with or without
    `optimizer=`; reset() captures anew in any case."""
    make_opt, on_device = _LR_CASES[opt_name]
    batches = _batches("mlp", 9)
    (_, eager_step), (_, train_step) = _mlp_with(make_opt), _mlp_with(make_opt)
    watched = train_step.optimizer if how == "watched optimizer" else None  # type: ignore
    step = GraphedStep(train_step, warmup=1, optimizer=watched)

    def lower_lr(train: Callable) -> None:  # what a scheduler does, on the step's optimizer
        for group in train.optimizer.param_groups:  # type: ignore[attr-defined]
            group["lr"] *= 0.5

    losses = []
    for i, (x, y) in enumerate(batches):
        if i >= 4:  # after warm-up, capture and two replays: a new rate at every step
            lower_lr(eager_step)
            lower_lr(train_step)
            if how == "reset" and i == 4:
                step.reset()
        losses.append((step(x, y).item(), eager_step(x, y).item()))
    for got, want in losses:
        _same(got, want)
    if not on_device:  # captured anew at each new rate: an eager step, a capture, and again
        assert step.calls <= 2
    elif how == "reset":  # reset at the first new rate: 1 eager, 1 capture, 3 replays
        assert step.graph is not None and step.calls == 5
    else:  # one capture, replays since (the new rates written to the device)
        assert step.graph is not None and step.calls == 9


@gpu
def test_every_kind_of_operation_replays_on_new_inputs(cuda: None) -> None:
    """Each way the fake runs work (ufuncs, reductions, functions, methods, indexing, scatter,
    matmul, erf) is recorded: replayed on new inputs, it gives what running it afresh gives."""
    cupy = _cupy()
    if not getattr(cupy, "FAKE", False):
        pytest.skip("the fake's model of capture")
    import cupyx
    import cupyx.scipy.special

    rng = np.random.default_rng(0)
    a = cupy.asarray(rng.standard_normal((4, 3)).astype(np.float32))
    ids = cupy.asarray(np.array([2, 0, 3]))

    def work() -> list:
        t = cupy.zeros((4, 3), dtype=np.float32)
        cupyx.scatter_add(t, ids, a[:3])
        t[1] = a[0] * 2
        out = cupy.empty_like(a)
        cupy.multiply(a, a, out=out)
        return [
            cupy.exp(a).sum(axis=0),
            cupy.add.reduce(a, axis=1),
            cupy.count_nonzero(a > 0),
            a[ids],
            a[0, 1],  # a 0-d view, as CuPy gives
            t,
            a @ a.T,
            cupyx.scipy.special.erf(a),
            a.max(),
            cupy.where(a > 0, a, 0.0),
            out,
            cupy.cumsum(a, axis=0),
        ]

    work()  # warm-up
    pool: list = []
    s = cupy.cuda.Stream(non_blocking=True)
    with s, cupy.cuda.using_allocator(lambda n: pool.append(n)):
        s.begin_capture()
        captured = work()
        g = s.end_capture()
    assert pool  # the capture's new arrays came from its allocator
    for _ in range(2):
        a[...] = cupy.asarray(rng.standard_normal((4, 3)).astype(np.float32))
        ids[...] = cupy.asarray(rng.permutation(4)[:3])
        g.launch(s)
        for got, want in zip(captured, work()):
            np.testing.assert_array_equal(cupy.asnumpy(got), cupy.asnumpy(want))


@gpu
def test_a_float16_autocast_step_replays_as_it_runs(cuda: None) -> None:
    from gnn.amp import autocast

    def make() -> Callable[..., Tensor]:
        _, train_step = _mlp("sgd")

        def step(x: Tensor, y: Tensor) -> Tensor:
            with autocast("cuda", dtype=gnn.float16):
                return train_step(x, y)

        return step

    eager_step, step = make(), GraphedStep(make(), warmup=1)
    for x, y in _batches("mlp", 5):
        _same(step(x, y).item(), eager_step(x, y).item())
    assert step.graph is not None


@gpu
def test_a_dropout_step_draws_at_each_replay(cuda: None) -> None:
    def make() -> tuple[nn.Module, Callable[..., Tensor]]:
        gnn.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 16), nn.Dropout(0.5), nn.Linear(16, 4)).to("cuda")
        opt = optim.SGD(model.parameters(), lr=0.1)

        def step(x: Tensor, y: Tensor) -> Tensor:
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss

        return model, step

    batches = [_batches("mlp", 1)[0]] * 6  # one batch: only the dropout masks change the loss
    (_, eager_step), (_, train_step) = make(), make()
    step = GraphedStep(train_step, warmup=1)
    gnn.manual_seed(1)
    eager = [eager_step(x, y).item() for x, y in batches]
    gnn.manual_seed(1)  # the same generator state for the graphed run
    graphed = [step(x, y).item() for x, y in batches]
    if getattr(_cupy(), "FAKE", False):  # the same draws: the capture itself draws nothing
        assert graphed == eager
    assert len(set(graphed[2:])) == len(graphed[2:])  # each replay drew new masks


_OPTIMIZERS = [
    pytest.param(lambda p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True), id="sgd"),
    pytest.param(lambda p: optim.SGD(p, lr=0.1, momentum=0.9, foreach=False), id="sgd-1by1"),
    pytest.param(lambda p: optim.Adam(p, lr=1e-2, amsgrad=True), id="adam-amsgrad"),
    pytest.param(lambda p: optim.RMSprop(p, lr=1e-2, momentum=0.5), id="rmsprop"),
    pytest.param(lambda p: optim.Adagrad(p, lr=1e-2), id="adagrad"),
    pytest.param(lambda p: optim.Adadelta(p), id="adadelta"),
    pytest.param(lambda p: optim.Adam(p, foreach=False), id="adam-1by1"),
    pytest.param(lambda p: optim.Adagrad(p, lr_decay=0.1), id="adagrad-decay"),
    pytest.param(lambda p: optim.NAdam(p, lr=1e-2), id="nadam"),
    pytest.param(lambda p: optim.RAdam(p, lr=1e-2), id="radam"),
]


def _mlp_with(make_opt: Callable) -> tuple[nn.Module, Callable[..., Tensor]]:
    gnn.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 4)).to("cuda")
    opt = make_opt(model.parameters())

    def step(x: Tensor, y: Tensor) -> Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    step.optimizer = opt  # type: ignore[attr-defined]
    return model, step


@gpu
@pytest.mark.parametrize("make_opt", _OPTIMIZERS)
def test_which_optimizers_replay_as_they_run(cuda: None, make_opt: Callable) -> None:
    """Each optimizer's step count (and what it makes from it: bias corrections, a decaying rate,
    NAdam's momentum schedule, RAdam's switch to rectified steps) advances at every replay."""
    (eager_model, eager_step), (graphed_model, train_step) = (
        _mlp_with(make_opt),
        _mlp_with(make_opt),
    )
    step = GraphedStep(train_step, warmup=2)
    for x, y in _batches("mlp", 7):
        eager_step(x, y)
        step(x, y)
    for a, b in zip(eager_model.parameters(), graphed_model.parameters()):
        _same(b.numpy(), a.numpy())


@gpu
@pytest.mark.parametrize(
    "make_opt",
    [
        pytest.param(lambda p: optim.Adam(p, lr=1e-2), id="adam-flat"),  # no float64 kernel
        pytest.param(lambda p: optim.NAdam(p, lr=1e-2), id="nadam"),
        pytest.param(lambda p: optim.RAdam(p, lr=1e-2, betas=(0.5, 0.9)), id="radam"),
    ],
)
def test_float64_steps_replay_as_they_run(cuda: None, make_opt: Callable) -> None:
    """float64: the flat path's Adam has no kernel and runs its reference, with the step count
    of the part's clock (on the device); the per-parameter rules compute in float64."""

    def make() -> tuple[nn.Module, Callable[..., Tensor]]:
        gnn.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 4)).to("cuda", "float64")
        opt = make_opt(model.parameters())

        def step(x: Tensor, y: Tensor) -> Tensor:  # float64 cross_entropy checks labels on the host
            opt.zero_grad()
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()
            opt.step()
            return loss

        return model, step

    rng = np.random.default_rng(2)
    batches = [
        tuple(gnn.tensor(rng.standard_normal(shape), device="cuda") for shape in ((5, 6), (5, 4)))
        for _ in range(7)
    ]
    (eager_model, eager_step), (graphed_model, train_step) = make(), make()
    step = GraphedStep(train_step, warmup=2)
    for x, y in batches:
        eager_step(x, y)
        step(x, y)
    for a, b in zip(eager_model.parameters(), graphed_model.parameters()):
        assert b.dtype == gnn.float64
        _same(b.numpy(), a.numpy())


@gpu
@pytest.mark.parametrize("make_opt", _OPTIMIZERS)
def test_state_dict_after_replays_is_what_eager_steps_give(cuda: None, make_opt: Callable) -> None:
    """A replay runs no Python: the host's counters lag behind, and state_dict() reads the true
    ones (step, NAdam's mu_product) from the device. Training then goes on as eager steps do."""
    (eager_model, eager_step), (graphed_model, train_step) = (
        _mlp_with(make_opt),
        _mlp_with(make_opt),
    )
    step = GraphedStep(train_step, warmup=2)

    def states_agree() -> None:
        want = eager_step.optimizer.state_dict()["state"]  # type: ignore[attr-defined]
        got = train_step.optimizer.state_dict()["state"]  # type: ignore[attr-defined]
        assert got.keys() == want.keys()
        for i in want:
            assert got[i].keys() == want[i].keys()
            for k, v in want[i].items():
                if isinstance(v, Tensor):
                    _same(got[i][k].numpy(), v.numpy(), f"{i} {k}")
                else:
                    assert type(got[i][k]) is type(v) and got[i][k] == pytest.approx(v), (i, k)

    batches = _batches("mlp", 9)
    for x, y in batches[:7]:
        eager_step(x, y)
        step(x, y)
    states_agree()
    small = (batches[0][0][:2], batches[0][1][:2])  # another shape: an eager step between replays
    for x, y in [batches[7], small, batches[8]]:
        eager_step(x, y)
        step(x, y)
    for a, b in zip(eager_model.parameters(), graphed_model.parameters()):
        _same(b.numpy(), a.numpy())
    for model in (eager_model, graphed_model):  # moved: the counters the device kept come along
        model.to("cpu")
    cpu_batch = (batches[0][0].to("cpu"), batches[0][1].to("cpu"))
    eager_step(*cpu_batch)
    train_step(*cpu_batch)
    states_agree()
    steps = {s.get("step") for s in train_step.optimizer.state.values()}  # type: ignore[attr-defined]
    assert steps <= {None, 11}  # 7 + 3 on the GPU (SGD counts none), 1 on the CPU


@gpu
def test_a_step_that_cannot_be_captured_says_why(cuda: None) -> None:
    if not getattr(_cupy(), "FAKE", False):
        pytest.skip("the fake's rule")
    _, train_step = _mlp("sgd")

    def printing_step(x: Tensor, y: Tensor) -> Tensor:
        loss = train_step(x, y)
        print(f"{loss.array:.3f}")  # a host read
        return loss

    step = GraphedStep(printing_step, warmup=1)
    batches = _batches("mlp", 2)
    step(*batches[0])
    with pytest.raises(RuntimeError, match=r"GraphedStep: the step cannot be captured.*\.item\(\)"):
        step(*batches[1])
    assert step.graph is None and step.calls == 1
