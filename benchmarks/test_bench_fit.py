"""Keras fit's own cost: one epoch of model.fit next to the same epoch as a hand-written loop.

A small MLP (64-128-10, ReLU, softmax with sparse categorical cross-entropy, SGD) on 4,096 random
samples in batches of 32, so the arithmetic is light and what fit adds (batching, callbacks,
logs, the step methods) shows. The baseline is the loop a user would write with gnn: gather a
shuffled batch, zero_grad, forward, cross-entropy of the logits, backward, step, read the loss.
fit also counts accuracy, which the loop does not. Reported without a target: the ratio is how
much fit's conveniences cost on a light model (on a heavier one they vanish in the arithmetic).
"""

from __future__ import annotations

import numpy as np
import pytest

import gnn
import gnn.functional as F
from gnn.layers import Dense, optimizers

N, D, H, C, BATCH = 4096, 64, 128, 10, 32


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((N, D), dtype=np.float32), rng.integers(0, C, N)


def _model() -> gnn.Sequential:
    gnn.manual_seed(0)
    model = gnn.Sequential(
        Dense(H, activation="relu", input_shape=(D,)), Dense(C, activation="softmax")
    )
    model.compile(
        optimizer=optimizers.SGD(learning_rate=0.01),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def test_hand_written_epoch(benchmark, data) -> None:
    x, y = gnn.tensor(data[0]), gnn.tensor(data[1])
    model = _model()
    hidden, head = model[0], model[1]
    opt = model.optimizer

    def epoch() -> float:
        order = np.random.default_rng(0).permutation(N)
        total = 0.0
        for start in range(0, N, BATCH):
            idx = order[start : start + BATCH]
            xb, yb = x[idx], y[idx]
            opt.zero_grad()
            loss = F.cross_entropy(head.pre_activation(hidden(xb)), yb)
            loss.backward()
            opt.step()
            total += float(loss.item())
        return total

    benchmark.group = "keras-fit-epoch-cpu"
    benchmark.extra_info["role"] = "baseline"
    assert np.isfinite(benchmark(epoch))


def test_fit_epoch(benchmark, data) -> None:
    x, y = data
    model = _model()
    benchmark.group = "keras-fit-epoch-cpu"
    history = benchmark(lambda: model.fit(x, y, epochs=1, batch_size=BATCH, verbose=0))
    assert np.isfinite(history.history["loss"][-1])
