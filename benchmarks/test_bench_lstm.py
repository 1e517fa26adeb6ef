"""The LSTM training step on a GPU: fused cell kernels against the unfused loop (pytest-benchmark).

Workload: benchmarks/launch_counts.py's reference LSTM (2 layers x 256, input 256, 32 steps,
batch 32, batch_first, a Linear 256-10 head on the last step, cross-entropy, Adam), float32.
- fused: the default on CUDA, per step and layer one matmul and one kernels/lstm_cell.cu launch
  each way (gnn/ops/rnn.py's FusedLstm cell);
- unfused (the baseline): the same step with gnn.backend.fused.lstm.runs_per_step patched to say
  no, so the NumPy cell (Lstm) runs on CuPy arrays (about 21 launches per step and layer);
- PyTorch's cuDNN LSTM, when PyTorch with CUDA is importable (same weights and data).
Each entry also carries the median of CUDA-event timings. benchmarks/conftest.py adds the ratio to
the baseline. GPU only: skipped without CuPy and a CUDA device.

Run: python -m pytest benchmarks/test_bench_lstm.py --benchmark-only -q
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from gpu_timing import cuda_median_s

import gnn
from gnn import nn
from gnn.backend import cuda_available
from gnn.backend.fused import lstm as fused_lstm

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA device"),
]
HIDDEN, STEPS, BATCH, CLASSES = 256, 32, 32, 10


class Net(nn.Module):
    """The reference model: a 2-layer LSTM and a linear head on its last step."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(HIDDEN, HIDDEN, num_layers=2, batch_first=True)
        self.head = nn.Linear(HIDDEN, CLASSES)

    def forward(self, x: Any) -> Any:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, STEPS, HIDDEN)).astype(np.float32)
    return x, rng.integers(0, CLASSES, BATCH)


def gnn_step() -> Any:
    """One training step of the reference model on the GPU, as a function (synchronised)."""
    import cupy

    gnn.manual_seed(0)
    model = Net().to("cuda")
    opt = gnn.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    x_host, y_host = data()
    x, y = gnn.tensor(x_host, device="cuda"), gnn.tensor(y_host, device="cuda")

    def step() -> None:
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
        cupy.cuda.Device().synchronize()

    return step


@pytest.mark.benchmark(group="gpu-lstm-train-step")
def test_fused_cell_kernels(benchmark: Any) -> None:
    step = gnn_step()
    seconds = cuda_median_s(step, repeat=20, warmup=3)
    benchmark.extra_info["median_ms_cuda_events"] = round(1e3 * seconds, 3)
    benchmark.pedantic(step, rounds=20, warmup_rounds=3)


@pytest.mark.benchmark(group="gpu-lstm-train-step")
def test_unfused_loop(benchmark: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fused_lstm, "runs_per_step", lambda be: False)
    step = gnn_step()
    benchmark.extra_info["role"] = "baseline"
    seconds = cuda_median_s(step, repeat=20, warmup=3)
    benchmark.extra_info["median_ms_cuda_events"] = round(1e3 * seconds, 3)
    benchmark.pedantic(step, rounds=20, warmup_rounds=3)


@pytest.mark.benchmark(group="gpu-lstm-train-step")
def test_pytorch_cudnn_lstm(benchmark: Any) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch without CUDA")
    tnn = torch.nn
    torch.manual_seed(0)
    rnn = tnn.LSTM(HIDDEN, HIDDEN, num_layers=2, batch_first=True).cuda()
    head = tnn.Linear(HIDDEN, CLASSES).cuda()
    params = [*rnn.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3)
    x_host, y_host = data()
    x, y = torch.from_numpy(x_host).cuda(), torch.from_numpy(y_host).cuda()

    def step() -> None:
        opt.zero_grad()
        out, _ = rnn(x)
        tnn.functional.cross_entropy(head(out[:, -1]), y).backward()
        opt.step()
        torch.cuda.synchronize()

    benchmark.pedantic(step, rounds=20, warmup_rounds=3)
