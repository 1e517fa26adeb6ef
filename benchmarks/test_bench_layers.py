"""Training steps of conv and recurrent models: gnn next to PyTorch CPU (same weights, same
thread count, same batch), PyTorch as the baseline of each group.

Workloads (issue 4):
- the digits CNN: conv3x3(1->16)-ReLU-maxpool2, conv3x3(16->32)-ReLU-maxpool2, flatten,
  linear(128->10), cross-entropy, Adam; batch 64 of 8x8 images. Target gnn <= 2x PyTorch.
- an LSTM step: LSTM(32 -> 64), batch 32, 50 time steps, batch_first, a linear head on the last
  state, MSE, Adam. Target gnn <= 1.5x PyTorch.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import gnn
import gnn.functional as F
from gnn import nn

THREADS = int(os.environ.get("GNN_BENCH_THREADS", os.cpu_count() or 1))
CNN_BATCH = 64
LSTM_BATCH, LSTM_T, LSTM_IN, LSTM_H = 32, 50, 32, 64


def _torch():
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(THREADS)
    return torch


def gnn_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(128, 10),
    )


def torch_cnn(torch):
    tnn = torch.nn
    return tnn.Sequential(
        tnn.Conv2d(1, 16, 3, padding=1),
        tnn.ReLU(),
        tnn.MaxPool2d(2),
        tnn.Conv2d(16, 32, 3, padding=1),
        tnn.ReLU(),
        tnn.MaxPool2d(2),
        tnn.Flatten(),
        tnn.Linear(128, 10),
    )


class GnnSeq(nn.Module):
    """LSTM over the sequence, linear head on the last state."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(LSTM_IN, LSTM_H, batch_first=True)
        self.head = nn.Linear(LSTM_H, 1)

    def forward(self, x: gnn.Tensor) -> gnn.Tensor:
        _, (h, _) = self.lstm(x)
        return self.head(h[0])


def torch_seq(torch):
    class TorchSeq(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = torch.nn.LSTM(LSTM_IN, LSTM_H, batch_first=True)
            self.head = torch.nn.Linear(LSTM_H, 1)

        def forward(self, x):
            _, (h, _) = self.lstm(x)
            return self.head(h[0])

    return TorchSeq()


def _cnn_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.random((CNN_BATCH, 1, 8, 8), dtype=np.float32)
    return x, rng.integers(0, 10, CNN_BATCH)


def _seq_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((LSTM_BATCH, LSTM_T, LSTM_IN)).astype(np.float32)
    return x, rng.standard_normal((LSTM_BATCH, 1)).astype(np.float32)


def _bench_gnn(benchmark, model: nn.Module, x: np.ndarray, y: np.ndarray, loss_fn, target):
    opt = gnn.optim.Adam(model.parameters(), lr=1e-3)
    xt, yt = gnn.tensor(x), gnn.tensor(y)

    def step() -> None:
        opt.zero_grad()
        loss_fn(model(xt), yt).backward()
        opt.step()

    step()
    benchmark.extra_info.update({"threads": THREADS, "target": target})
    benchmark.pedantic(step, rounds=30, iterations=5, warmup_rounds=2)


def _bench_torch(benchmark, torch, model, ref: nn.Module, x, y, loss_fn) -> None:
    model.load_state_dict({k: torch.tensor(v.numpy()) for k, v in ref.state_dict().items()})
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt, yt = torch.tensor(x), torch.tensor(y)

    def step() -> None:
        opt.zero_grad()
        loss_fn(model(xt), yt).backward()
        opt.step()

    step()
    benchmark.extra_info.update({"role": "baseline", "threads": THREADS})
    benchmark.pedantic(step, rounds=30, iterations=5, warmup_rounds=2)


@pytest.mark.benchmark(group="digits-cnn-step-cpu")
def test_digits_cnn_step_gnn(benchmark):
    gnn.manual_seed(0)
    _bench_gnn(benchmark, gnn_cnn(), *_cnn_data(), F.cross_entropy, 2.0)


@pytest.mark.benchmark(group="digits-cnn-step-cpu")
def test_digits_cnn_step_torch(benchmark):
    torch = _torch()
    if torch is None:
        pytest.skip("PyTorch is not installed")
    gnn.manual_seed(0)
    x, y = _cnn_data()
    _bench_torch(
        benchmark, torch, torch_cnn(torch), gnn_cnn(), x, y, torch.nn.functional.cross_entropy
    )


@pytest.mark.benchmark(group="lstm-step-cpu")
def test_lstm_step_gnn(benchmark):
    gnn.manual_seed(0)
    _bench_gnn(benchmark, GnnSeq(), *_seq_data(), F.mse_loss, 1.5)


@pytest.mark.benchmark(group="lstm-step-cpu")
def test_lstm_step_torch(benchmark):
    torch = _torch()
    if torch is None:
        pytest.skip("PyTorch is not installed")
    gnn.manual_seed(0)
    x, y = _seq_data()
    _bench_torch(benchmark, torch, torch_seq(torch), GnnSeq(), x, y, torch.nn.functional.mse_loss)
