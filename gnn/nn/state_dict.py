"""A module's state dict: its keys, and loading one back with every check done before a copy.

Module.state_dict and Module.load_state_dict are the public methods; this is what they run.
Serialization sits on top of what every model runs through, so it lives apart from Module.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from gnn.dtypes import is_floating
from gnn.tensor import Tensor

if TYPE_CHECKING:
    from gnn.nn.module import Module


def state_tensors(module: Module) -> Iterator[tuple[str, Tensor]]:
    """(key, tensor) of every parameter and persistent buffer, in PyTorch's key order (a module
    reachable under two names is listed under both)."""
    for mod_name, mod in module.named_modules(remove_duplicate=False):
        pre = f"{mod_name}." if mod_name else ""
        for name, t in [*mod._parameters.items(), *mod._buffers.items()]:
            if t is not None and name not in mod._non_persistent:
                yield pre + name, t


def load_into(module: Module, state_dict: Any, strict: bool) -> tuple[list[str], list[str]]:
    """Check every key, shape and dtype of state_dict against module and convert every value,
    then copy them all in; returns (missing_keys, unexpected_keys). See Module.load_state_dict."""
    who = f"{type(module).__name__}.load_state_dict"
    if isinstance(state_dict, (str, bytes, os.PathLike)):
        raise TypeError(
            f"{who}: got a path ({os.fsdecode(state_dict)!r}); pass a dict; use "
            "gnn.load(path) to read a weights file: model.load_state_dict(gnn.load(path))"
        )
    if not isinstance(state_dict, Mapping):
        raise TypeError(
            f"{who}: expected a dict of name -> Tensor, got {type(state_dict).__name__}"
        )
    own = OrderedDict(state_tensors(module))
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched, wrong_type, ready = [], [], []
    for k, target in own.items():
        if k not in state_dict:
            continue
        value = state_dict[k]
        if isinstance(value, Tensor):
            src = value.numpy() if value.backend is not target.backend else value.array
        else:
            try:
                src = value if hasattr(value, "__array_namespace__") else np.asarray(value)
            except (TypeError, ValueError) as e:
                wrong_type.append(f"{k}: a {type(value).__name__} ({e})")
                continue
        dt = getattr(src, "dtype", None)
        if dt is None or not (dt.kind in "biu" or is_floating(dt)):
            what = dt or type(value).__name__
            wrong_type.append(f"{k}: dtype {what} is not numeric (model {target.dtype})")
        elif tuple(src.shape) != target.shape:
            mismatched.append(f"{k}: checkpoint {tuple(src.shape)} vs model {target.shape}")
        else:  # converted now, so that a failure here still changes nothing
            ready.append((target, target.backend.asarray(src, dtype=target.dtype)))
    problems = [
        f"{label}: {sep.join(map(str, keys))}"
        for label, sep, keys in (
            ("missing keys", ", ", missing if strict else []),
            ("unexpected keys", ", ", unexpected if strict else []),
            ("size mismatch", "; ", mismatched),
            ("wrong type", "; ", wrong_type),
        )
        if keys
    ]
    if problems:
        raise RuntimeError(
            f"error(s) loading state_dict for {type(module).__name__}:\n  " + "\n  ".join(problems)
        )
    for dest, data in ready:
        dest.array[...] = data
    return missing, unexpected
