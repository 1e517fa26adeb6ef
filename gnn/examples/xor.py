"""XOR with the classic 2-3-1 sigmoid network, trained by plain SGD on the mean squared error.

Every step sees all four cases, so a step is an epoch: --epochs counts steps (default 5000).
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

import gnn
from gnn import functional as F
from gnn import nn, optim
from gnn.examples._common import arg, interruptible, plot, save_example
from gnn.layers import optimizers

INPUTS = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]
TARGETS = [[0.0], [1.0], [1.0], [0.0]]
DEFAULTS = {"epochs": 5000, "lr": 2.0, "seed": 0}
# the CLI notes these options when given: the four cases always form one batch
UNUSED_OPTIONS = ("batch_size",)


def load_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, x, y): the four cases are both the training and the test set."""
    x = np.array(INPUTS, dtype=np.float32)
    y = np.array(TARGETS, dtype=np.float32)
    return x, y, x, y


def build_model(config: dict | None = None) -> gnn.Sequential:
    """2 -> 3 (sigmoid) -> 1 (sigmoid), a Keras Sequential (so `gnn evaluate` can score it)."""
    return gnn.Sequential(nn.Linear(2, 3), nn.Sigmoid(), nn.Linear(3, 1), nn.Sigmoid())


def compile_model(model: gnn.Model, lr: float) -> None:
    """SGD on the mean squared error, with accuracy (for `gnn evaluate`)."""
    model.compile(
        optimizer=optimizers.SGD(learning_rate=lr),
        loss="mse",
        metrics=["binary_accuracy"],
    )


def main(args: argparse.Namespace | None = None, log: Any = print) -> dict[str, float]:
    """Train on the four XOR cases; returns {"loss", "accuracy", "steps"}."""
    from gnn.train import History

    steps = arg(args, "epochs", DEFAULTS["epochs"])
    lr = arg(args, "lr", DEFAULTS["lr"])
    seed = arg(args, "seed", DEFAULTS["seed"])
    device = getattr(args, "device", None)
    gnn.manual_seed(seed)
    x = gnn.tensor(INPUTS, device=device)
    y = gnn.tensor(TARGETS, device=device)
    model = build_model().to(device or gnn.get_default_device())
    opt = optim.SGD(model.parameters(), lr=lr)
    history = History() if getattr(args, "plot", None) else None
    log(f"xor: 2-3-1 sigmoid network, SGD lr={lr}, {steps} steps, device {x.device}")
    with interruptible(model, "xor", {}, seed=seed) as guard:  # Ctrl-C: the model so far
        for step in range(1, steps + 1):
            with guard.step():
                opt.zero_grad()
                out = model(x)
                loss = F.mse_loss(out, y)
                loss.backward()
                opt.step()
            if history is not None:
                acc = ((out.detach() > 0.5).float() == y).float().mean().item()
                history.record(step - 1, {"loss": loss.item(), "accuracy": acc})
            if step % 500 == 0 or step == steps:
                acc = ((out.detach() > 0.5).float() == y).float().mean().item()
                log(f"step {step:5d}  loss {loss.item():.5f}  accuracy {acc:.0%}")
        with gnn.no_grad():
            out = model(x)
    accuracy = ((out > 0.5).float() == y).float().mean().item()
    for inp, o in zip(INPUTS, out.numpy().ravel()):
        log(f"  {int(inp[0])} xor {int(inp[1])} -> {o:.3f}")
    save = getattr(args, "save", None)
    if save:  # before the plot: a plot that fails must not lose the model
        meta = save_example(model, save, "xor", {}, seed=seed, metrics={"accuracy": accuracy})
        log(f"saved weights to {save} and settings to {meta}")
    plot(history, getattr(args, "plot", None), log, saved_to=save)
    return {"loss": F.mse_loss(out, y).item(), "accuracy": accuracy, "steps": steps}
