"""Helpers the example recipes share: reading CLI arguments, saving a trained example, plotting."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

FORMAT = "gnn-example/1"


def arg(args: Any, name: str, default: Any) -> Any:
    """args.<name> when given (not None), else the recipe's default."""
    value = getattr(args, name, None)
    return default if value is None else value


def metadata_path(weights_path: str | os.PathLike) -> Path:
    """Where the JSON beside a weights file lives: same name, suffix .json."""
    p = Path(weights_path)
    return p.with_suffix(".json") if p.suffix != ".json" else p.with_name(p.name + ".meta.json")


def save_example(
    model: Any, path: str | os.PathLike, example: str, config: dict, **extra: Any
) -> Path:
    """Write the weights (safetensors, atomic) and a JSON naming the recipe and its settings."""
    from gnn.train.callbacks import save_weights

    save_weights(model, os.fspath(path))
    meta = {
        "format": FORMAT,
        "example": example,
        "weights": Path(path).name,
        "config": config,
        **extra,
    }
    mpath = metadata_path(path)
    tmp = mpath.with_name(f".{mpath.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(meta, indent=2))
    os.replace(tmp, mpath)
    return mpath


def load_weights(path: str | os.PathLike) -> dict:
    """The state dict in a safetensors file (NumPy arrays)."""
    try:
        from gnn.io import load
    except ImportError:
        from safetensors.numpy import load_file

        return load_file(os.fspath(path))
    return load(os.fspath(path))


def read_metadata(path: str | os.PathLike) -> dict:
    """The JSON beside a saved example's weights (checked)."""
    mpath = metadata_path(path)
    if not Path(path).exists():
        raise FileNotFoundError(f"no weights file at {path}")
    if not mpath.exists():
        raise FileNotFoundError(
            f"{path} has no {mpath.name} beside it; save models with `gnn train NAME --save {path}`"
        )
    meta = json.loads(mpath.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{mpath}: not a gnn example file (format {meta.get('format')!r})")
    return meta


def plot(history: Any, path: str | None, log: Any) -> None:
    """history.plot(path) when asked, with a hint instead of a crash when matplotlib is missing."""
    if not path:
        return
    try:
        history.plot(path)
        log(f"training curves written to {path}")
    except ImportError as exc:
        log(f"no plot: {exc}")
