"""Launch budgets of one steady-state training step on the fake CuPy (issue 14).

Counts on the fake CuPy are deterministic (rules in tests/fake_gpu/cupy's docstring), so these are
tests, not timings. Each reference model of benchmarks/launch_counts.py runs narrow (`small=True`:
the same layers and steps, so the same launches; only bytes shrink) for one warm-up step, then one
counted step must stay within CEILINGS.

CEILINGS are regression guards: today's measured counts, so a change that adds a launch, a sync or
a host-to-device copy fails now. TARGETS are the issue's goals (PyTorch eager's fused-optimizer
counts; 0 syncs and 0 h2d copies for all four); they are recorded here and NOT asserted yet. When
a change lowers a count, lower its ceiling with it. The full-size models and the bytes are in
benchmarks/test_bench_launches.py.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import FAKE_CUDA

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not FAKE_CUDA, reason="counts on the fake CuPy: run with GNN_FAKE_CUDA=1"),
]

# (launches, syncs, h2d copies) per counted step, measured; lower them as they come down.
# Before the embedding's id check moved to the device and bias gradients' ones vectors were
# cached: mlp (105, 0, 0), cnn (177, 0, 0), lstm (1570, 0, 0), gpt (3830, 1, 0); gpt was
# (3731, 0, 0) before the causal mask was cached, (3683, 0, 0) before attention stopped making
# cuBLAS copy its operands (120 hidden copies), (3611, 0, 0) before the layer-norm kernels (25
# layer norms: 21 launches each, now 1 forward + 2 backward).
# Before the flat optimizer path (gnn/optim/_flat.py, the default on CUDA: one gradient copy per
# parameter plus Adam's 13 ufuncs per group, not 13-14 per parameter): mlp (102, 0, 0), cnn
# (176, 0, 0), lstm (1569, 0, 0), gpt (3611, 0, 0) without the layer-norm kernels; with the flat
# path, gpt was (1701, 0, 0) before the layer-norm kernels, (1251, 0, 0) before the MLP's bias add
# was fused into its GELU (kernels/gelu.cu: 12 MLPs, 20 launches each), (999, 0, 0) before the
# attention kernels (kernels/attention.cu: 1 launch forward, 2 backward, reading q, k, v from the
# packed projection and writing their gradients into one buffer; 26 launches per layer before).
CEILINGS = {
    "mlp": (22, 0, 0),
    "cnn": (29, 0, 0),
    "lstm": (281, 0, 0),
    "gpt": (429, 0, 0),
}
# gpt was (454, 0, 0) before add's one gradient array went on to both operands uncopied (24
# residual adds; gnn/autograd.py's _share copies only for leaves that would keep it).
# lstm was (284, 0, 0) before its bias gradients' (2, rows) column sums went into their homes (one
# strided copy for both when the flat buffer pads them apart, none when back to back) and its zero
# initial state was cached per backend, shape and dtype (one memset less).
# Before gradient homes (Linear, Embedding, LayerNorm, bias-GELU, LSTM weights write parameter
# gradients straight into the flat optimizer buffer, gnn/optim/_flat.py; no gather copy for
# those): mlp (31, 0, 0), cnn (40, 0, 0), lstm (291, 0, 0), gpt (602, 0, 0).
# Each was 12 higher before the fused optimizer kernels (kernels/optim.cu: Adam's 13 ufuncs over
# the flat buffers became one launch): mlp (43, 0, 0), cnn (117, 0, 0), lstm (303, 0, 0), gpt
# (1011, 0, 0).
# lstm was (1462, 0, 0) before its fused cell kernels (kernels/lstm_cell.cu: per step and layer
# one matmul and one kernel each way, about 45 launches before).
# cnn was (105, 0, 0) before the conv kernels (kernels/conv.cu: im2col, col2im and max pooling's
# backward one gather launch each, not a loop over the kernel taps; layout changes fused), (38, 0,
# 0) before the bias gradient's sum joined the gradient's layout change (one launch per conv).
# Each was 1 higher before backward's seed of ones was cached (gnn/autograd.py: _seed,
# through Backend.constant),
# lstm and gpt included;
# cnn was (35, 0, 0) before Conv2d's weight and bias gradients went into their homes; mlp (24, 0,
# 0) and cnn (31, 0, 0) before ReLU's backward became one kernel (kernels/relu.cu), not two.
# The goals (launches, syncs, h2d): not asserted yet.
TARGETS = {"mlp": (22, 0, 0), "cnn": (31, 0, 0), "lstm": (280, 0, 0), "gpt": (440, 0, 0)}


def _launch_counts() -> Any:
    """benchmarks/launch_counts.py, loaded by path (benchmarks/ is not a package)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "launch_counts.py"
    name = "gnn_bench_launch_counts"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.mark.parametrize("model", list(CEILINGS))
def test_training_step_stays_within_its_launch_budget(model: str) -> None:
    lc = _launch_counts()
    c = lc.count(lc.MODELS[model](small=True))
    launches, syncs, h2d = CEILINGS[model]
    top = list(c.by_source().items())[:5]
    assert c.launches <= launches, f"{model}: {c.launches} launches > {launches}; top: {top}"
    assert c.syncs <= syncs, f"{model}: {c.syncs} syncs > {syncs}: {c.by_source('syncs')}"
    assert c.h2d <= h2d, f"{model}: {c.h2d} host-to-device copies > {h2d}: {c.by_source('h2d')}"


def test_counted_steps_repeat_exactly() -> None:
    """A steady state: a second counted step launches exactly what the first did."""
    lc = _launch_counts()
    step = lc.MODELS["mlp"](small=True)
    first = lc.count(step)
    second = lc.count(step, warmup=0)
    assert [e[:2] for e in first.events] == [e[:2] for e in second.events]


def test_embedding_id_check_waits_for_check_errors() -> None:
    """A bad id costs the step no sync: it is flagged on the device and raised by the next check
    (here `.item()`), with the CPU path's message; the flag is cleared once raised."""
    import cupy
    import numpy as np

    import gnn
    import gnn.functional as F

    w = gnn.randn(4, 2, device="cuda", requires_grad=True)
    for ids, bad in (([0, 4, 1], 4), ([[-1, 2]], -1)):
        with cupy.counting() as c:
            loss = F.embedding(gnn.tensor(np.array(ids), device="cuda"), w).sum()
            loss.backward()
        assert c.syncs == 0
        with pytest.raises(IndexError, match=rf"embedding: id {bad} is out of range.*4 rows"):
            loss.item()
        loss.item()  # raised once; nothing is pending now
    good = F.embedding(gnn.tensor(np.array([3, 0]), device="cuda"), w).sum()
    assert good.item() == pytest.approx(float(w.numpy()[[3, 0]].sum()))


@pytest.mark.parametrize(
    ("q_shape", "kv_shape", "mask"),
    [
        ((2, 3, 5, 4), (2, 3, 5, 4), "causal"),
        ((2, 3, 5, 4), (1, 3, 7, 4), "bool"),  # broadcast batch dims, L != S
        ((3, 6, 2), (3, 6, 2), None),
    ],
)
def test_attention_backward_without_operand_copies_matches_the_cpu(
    q_shape: tuple, kv_shape: tuple, mask: str | None
) -> None:
    """The GPU's transposed attention backward (no hidden operand copies) gives the CPU's grads,
    on strided q/k/v views as the GPT's are, and copies nothing behind matmul's back."""
    import cupy
    import numpy as np

    import gnn
    import gnn.functional as F

    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal(s) for s in (q_shape, kv_shape, kv_shape)]
    keep = rng.random((q_shape[-2], kv_shape[-2])) > 0.3
    keep[:, 0] = True
    grads = {}
    for device in ("cpu", "cuda"):
        # strided views: each tensor is the transpose of a contiguous one, transposed back
        leaves = [
            gnn.tensor(np.ascontiguousarray(np.swapaxes(a, -1, -2)), device=device).requires_grad_()
            for a in arrays
        ]
        q, k, v = (t.transpose(-1, -2) for t in leaves)
        kwargs = {"is_causal": True} if mask == "causal" else {}
        if mask == "bool":
            kwargs["attn_mask"] = gnn.tensor(keep, device=device)
        with cupy.counting() as c:
            out = F.scaled_dot_product_attention(q, k, v, **kwargs)
            (out * out).sum().backward()
        if device == "cuda":
            assert c.hidden_copies == 0, c.by_source()
        grads[device] = [t.grad.numpy() for t in leaves]
    for cpu, gpu in zip(grads["cpu"], grads["cuda"]):
        np.testing.assert_allclose(gpu, cpu, rtol=1e-10, atol=1e-12)
