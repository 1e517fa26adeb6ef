"""Handwritten digits with a small CNN (PyTorch layers, trained with the Keras-style fit)."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

import gnn
from gnn import nn
from gnn.examples import digits
from gnn.examples._common import arg, fit_and_evaluate, plot, save_example
from gnn.layers import optimizers

DEFAULTS = {
    "epochs": 20,
    "batch_size": 32,
    "lr": 2e-3,
    "seed": 0,
    "channels": [32, 64],
    "hidden": 128,
    "dropout": 0.3,
}


def load_data(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """digits.load_data with images shaped (N, 1, 8, 8)."""
    x_tr, y_tr, x_te, y_te = digits.load_data(seed)
    return x_tr.reshape(-1, 1, 8, 8), y_tr, x_te.reshape(-1, 1, 8, 8), y_te


def build_model(config: dict) -> nn.Module:
    """conv3x3(c1)-ReLU-pool2, conv3x3(c2)-ReLU-pool2, flatten, dropout, hidden ReLU, 10 logits."""
    missing = [n for n in ("Conv2d", "MaxPool2d", "Flatten") if not hasattr(nn, n)]
    if missing:
        raise RuntimeError(f"digits-cnn needs gnn.nn.{', '.join(missing)}, not in this build")
    c1, c2 = config["channels"]
    hidden = config.get("hidden", DEFAULTS["hidden"])
    p = config.get("dropout", DEFAULTS["dropout"])
    return gnn.Sequential(
        nn.Conv2d(1, c1, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),  # (N, c1, 4, 4)
        nn.Conv2d(c1, c2, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),  # (N, c2, 2, 2)
        nn.Flatten(),
        nn.Dropout(p),
        nn.Linear(c2 * 2 * 2, hidden),
        nn.ReLU(),
        nn.Dropout(p),
        nn.Linear(hidden, 10),
    )


def compile_model(model: gnn.Model, lr: float) -> None:
    """Adam on cross-entropy of the logits (from_logits=True), with accuracy."""
    model.compile(
        optimizer=optimizers.Adam(learning_rate=lr),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        from_logits=True,
    )


def main(args: argparse.Namespace | None = None, log: Any = print) -> dict[str, float]:
    """Train and report {"test_accuracy", "test_loss", "epochs"}."""
    epochs = arg(args, "epochs", DEFAULTS["epochs"])
    batch_size = arg(args, "batch_size", DEFAULTS["batch_size"])
    lr = arg(args, "lr", DEFAULTS["lr"])
    seed = arg(args, "seed", DEFAULTS["seed"])
    gnn.manual_seed(seed)
    x_tr, y_tr, x_te, y_te = load_data(seed)
    config = {k: DEFAULTS[k] for k in ("channels", "hidden", "dropout")}
    model = build_model(config)
    device = getattr(args, "device", None)
    if device:
        model.to(device)
    compile_model(model, lr)
    log(
        f"digits-cnn: {len(x_tr)} training images, {len(x_te)} test images; channels "
        f"{config['channels']}, Adam lr={lr}"
    )
    history, result = fit_and_evaluate(
        model,
        "digits-cnn",
        config,
        (x_tr, y_tr),
        (x_te, y_te),
        epochs=epochs,
        batch_size=batch_size,
        verbose=0 if getattr(args, "quiet", False) else 2,
        seed=seed,
    )
    log(f"test accuracy {result['accuracy']:.3f} (loss {result['loss']:.4f})")
    save = getattr(args, "save", None)
    if save:  # before the plot: a failing plot must not lose it
        save_example(
            model,
            save,
            "digits-cnn",
            config,
            seed=seed,
            metrics={"test_accuracy": result["accuracy"]},
        )
        log(f"saved to {save}")
    plot(history, getattr(args, "plot", None), log, saved_to=save)
    return {"test_accuracy": result["accuracy"], "test_loss": result["loss"], "epochs": epochs}
