"""Handwritten digits (8x8 images, 10 classes) with a Keras-style MLP: 64 -> 128 -> 64 -> 10."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

import gnn
from gnn.examples._common import arg, fit_and_evaluate, plot, save_example
from gnn.layers import Dense, Dropout, optimizers

DEFAULTS = {"epochs": 30, "batch_size": 32, "lr": 2e-3, "seed": 0, "hidden": [128, 64]}


def load_data(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test): pixels scaled to [0, 1], a stratified 80/20 split."""
    ds = gnn.datasets.digits()
    x = ds.x.reshape(len(ds.x), -1).astype(np.float32)
    x = x / max(float(x.max()), 1.0)
    x_tr, x_te, y_tr, y_te = gnn.datasets.train_test_split(
        x, ds.y, test_fraction=0.2, seed=seed, stratify=True
    )
    return x_tr, y_tr, x_te, y_te


def build_model(config: dict) -> gnn.nn.Module:
    """64 -> hidden (ReLU, dropout 0.1) ... -> 10 (softmax)."""
    model = gnn.Sequential()
    for i, units in enumerate(config["hidden"]):
        model.add(
            Dense(units, activation="relu", input_shape=(config["features"],) if i == 0 else None)
        )
        model.add(Dropout(0.1))
    model.add(Dense(10, activation="softmax"))
    return model


def compile_model(model: gnn.Model, lr: float) -> None:
    """Adam on sparse categorical cross-entropy, with accuracy."""
    model.compile(
        optimizer=optimizers.Adam(learning_rate=lr),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )


def main(args: argparse.Namespace | None = None, log: Any = print) -> dict[str, float]:
    """Train and report {"test_accuracy", "test_loss", "epochs"}."""
    epochs = arg(args, "epochs", DEFAULTS["epochs"])
    batch_size = arg(args, "batch_size", DEFAULTS["batch_size"])
    lr = arg(args, "lr", DEFAULTS["lr"])
    seed = arg(args, "seed", DEFAULTS["seed"])
    gnn.manual_seed(seed)
    x_tr, y_tr, x_te, y_te = load_data(seed)
    config = {"features": x_tr.shape[1], "hidden": DEFAULTS["hidden"]}
    model = build_model(config)
    device = getattr(args, "device", None)
    if device:
        model.to(device)
    compile_model(model, lr)
    log(
        f"digits: {len(x_tr)} training images, {len(x_te)} test images; MLP "
        f"{config['features']}-{'-'.join(map(str, config['hidden']))}-10, Adam lr={lr}"
    )
    history, result = fit_and_evaluate(
        model,
        "digits",
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
            "digits",
            config,
            seed=seed,
            metrics={"test_accuracy": result["accuracy"]},
        )
        log(f"saved to {save}")
    plot(history, getattr(args, "plot", None), log, saved_to=save)
    return {"test_accuracy": result["accuracy"], "test_loss": result["loss"], "epochs": epochs}
