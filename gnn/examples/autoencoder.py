"""An autoencoder on the digits: 64 -> 32 -> 8 -> 32 -> 64, trained to reproduce its input."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

import gnn
from gnn.examples import digits
from gnn.examples._common import arg, fit_and_evaluate, plot, save_example
from gnn.layers import Dense, optimizers

DEFAULTS = {"epochs": 40, "batch_size": 32, "lr": 3e-3, "seed": 0, "sizes": [32, 8]}


def load_data(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, x_train, x_test, x_test): the targets are the inputs."""
    x_tr, _, x_te, _ = digits.load_data(seed)
    return x_tr, x_tr, x_te, x_te


def build_model(config: dict) -> gnn.nn.Module:
    """Encoder features -> sizes (ReLU; the last is the code), decoder back (sigmoid output)."""
    enc = config["sizes"]
    model = gnn.Sequential()
    for i, units in enumerate(enc):
        model.add(
            Dense(units, activation="relu", input_shape=(config["features"],) if i == 0 else None)
        )
    for units in reversed(enc[:-1]):
        model.add(Dense(units, activation="relu"))
    model.add(Dense(config["features"], activation="sigmoid"))
    return model


def compile_model(model: gnn.Model, lr: float) -> None:
    """Adam on the mean squared reconstruction error."""
    model.compile(optimizer=optimizers.Adam(learning_rate=lr), loss="mse")


def main(args: argparse.Namespace | None = None, log: Any = print) -> dict[str, float]:
    """Train; report the test reconstruction error next to predicting the mean image."""
    epochs = arg(args, "epochs", DEFAULTS["epochs"])
    batch_size = arg(args, "batch_size", DEFAULTS["batch_size"])
    lr = arg(args, "lr", DEFAULTS["lr"])
    seed = arg(args, "seed", DEFAULTS["seed"])
    gnn.manual_seed(seed)
    x_tr, _, x_te, _ = load_data(seed)
    config = {"features": x_tr.shape[1], "sizes": DEFAULTS["sizes"]}
    model = build_model(config)
    device = getattr(args, "device", None)
    if device:
        model.to(device)
    compile_model(model, lr)
    sizes = [
        config["features"],
        *config["sizes"],
        *reversed(config["sizes"][:-1]),
        config["features"],
    ]
    log(f"autoencoder: {'-'.join(map(str, sizes))} on {len(x_tr)} digit images, Adam lr={lr}")
    history, evaluated = fit_and_evaluate(
        model,
        "autoencoder",
        config,
        (x_tr, x_tr),
        (x_te, x_te),
        epochs=epochs,
        batch_size=batch_size,
        verbose=0 if getattr(args, "quiet", False) else 2,
        seed=seed,
    )
    mse = evaluated["loss"]
    baseline = float(np.mean((x_te - x_tr.mean(axis=0)) ** 2))
    log(f"test reconstruction MSE {mse:.4f} (predicting the mean image: {baseline:.4f})")
    save = getattr(args, "save", None)
    if save:  # before the plot: a failing plot must not lose it
        save_example(model, save, "autoencoder", config, seed=seed, metrics={"test_mse": mse})
        log(f"saved to {save}")
    plot(history, getattr(args, "plot", None), log, saved_to=save)
    return {"test_mse": mse, "baseline_mse": baseline, "epochs": epochs}
