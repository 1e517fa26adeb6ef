"""gnn.save / gnn.load, shaped like torch.save / torch.load, in a safe format: never pickle.

What can be saved: Tensors, NumPy arrays, numbers, strings, None, and lists, tuples and dicts of
these, nested (model and optimizer state dicts, epochs, configs: a training checkpoint). The file
is safetensors: the tensors by name, and the structure as JSON in the metadata entry
"gnn.structure". A flat dict of name -> Tensor is written exactly as gnn.io.save writes it (no
structure entry), so weights files stay plain safetensors that other tools read.

Loading never runs code from the file: a PyTorch pickle (torch.save's zip or legacy format) is
refused with a message that says how to convert it, and whole objects (a model, an optimizer)
cannot be saved at all: save their state_dict() and rebuild them in code.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO

import numpy as np

from gnn import io as _io
from gnn.backend import Device, get_backend, parse_device
from gnn.tensor import Tensor

__all__ = ["add_safe_globals", "get_safe_globals", "load", "safe_globals", "save"]

STRUCTURE_KEY = "gnn.structure"
STRUCTURE_VERSION = 1
_TAGS = ("dict", "tuple", "tensor", "ndarray", "float")
_MAX_DEPTH = 200  # nesting deeper than this is refused on save and on load

_PICKLE_HELP = (
    "gnn does not read pickles, which can run code when loaded. Convert the file once where "
    "PyTorch is installed: a state dict with `from safetensors.torch import save_file; "
    "save_file(torch.load(path, weights_only=True), 'model.safetensors')`, or any checkpoint "
    "of tensors, numbers, strings, lists and dicts with `gnn.save(torch.load(path, "
    "weights_only=True), 'checkpoint.gnn')` (gnn.save takes PyTorch tensors); then gnn.load "
    "the new file"
)


# ---- the safe_globals API, accepted for scripts that call it --------------------------------


class safe_globals(contextlib.ContextDecorator):  # PyTorch's name, lower case
    """Accepted as a no-op: gnn.load never unpickles, so there are no globals to allow."""

    def __init__(self, safe_globals: Any = None) -> None:
        self.safe_globals = list(safe_globals or [])

    def __enter__(self) -> safe_globals:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None


def add_safe_globals(safe_globals: Any) -> None:
    """Accepted as a no-op (see safe_globals)."""


def get_safe_globals() -> list:
    """Always empty: gnn.load never unpickles."""
    return []


# ---- saving -----------------------------------------------------------------------------------


class _Writer:
    """Walks the object: collects host arrays by name and returns its JSON structure."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}
        self._by_id: dict[int, str] = {}  # one copy of a tensor saved twice (tied weights)
        self._keep: list[Any] = []  # holds the objects whose ids are keys above

    def _name(self, path: str) -> str:
        name = path or "tensor"
        n = 1
        while name in self.arrays:
            n += 1
            name = f"{path}#{n}"
        return name

    def node(self, value: Any, path: str, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise ValueError(f"gnn.save: the object nests deeper than {_MAX_DEPTH} levels")
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else {"float": repr(value)}
        if isinstance(value, np.generic) and not isinstance(value, np.ndarray):
            if value.dtype.kind in "biuf":
                return self.node(value.item(), path, depth)
            raise TypeError(f"gnn.save: {_where(path)} is a NumPy {value.dtype} scalar")
        if isinstance(value, Tensor):
            return {"tensor": self._array(value, value.array, path), "device": str(value.device)}
        if isinstance(value, np.ndarray):
            return {"ndarray": self._array(value, value, path)}
        if _is_foreign_array(value):  # e.g. a torch.Tensor: converting a checkpoint
            return {"tensor": self._foreign(value, path), "device": "cpu"}
        if isinstance(value, Mapping):
            items = []
            for k, v in value.items():
                if not (k is None or isinstance(k, (str, int, float, bool))):
                    raise TypeError(
                        f"gnn.save: {_where(path)} has a key of type {type(k).__name__} ({k!r}); "
                        "keys must be strings, numbers, booleans or None"
                    )
                items.append(
                    [self.node(k, path, depth + 1), self.node(v, _join(path, k), depth + 1)]
                )
            return {"dict": items}
        if isinstance(value, tuple):
            return {"tuple": [self.node(v, _join(path, i), depth + 1) for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [self.node(v, _join(path, i), depth + 1) for i, v in enumerate(value)]
        raise TypeError(_unsavable(value, path))

    def _array(self, owner: Any, data: Any, path: str) -> str:
        key = id(data)
        if key in self._by_id:
            return self._by_id[key]
        name = self._name(path)
        self.arrays[name] = _io._host_array(owner, name, "gnn.save")
        self._by_id[key] = name
        self._keep.append(data)
        return name

    def _foreign(self, value: Any, path: str) -> str:
        v = value.detach() if callable(getattr(value, "detach", None)) else value
        v = v.cpu() if callable(getattr(v, "cpu", None)) else v
        try:
            arr = np.asarray(v)
        except Exception as exc:  # the other library's error, whatever it is, reported as ours
            raise TypeError(
                f"gnn.save: {_where(path)} is a {type(value).__name__} that NumPy cannot read "
                f"({exc})"
            ) from None
        return self._array(arr, arr, path)


def _is_foreign_array(value: Any) -> bool:
    return (
        hasattr(value, "__array__")
        and hasattr(value, "shape")
        and hasattr(value, "dtype")
        and not isinstance(value, (Mapping, list, tuple, str))
    )


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _where(path: str) -> str:
    return f"entry {path!r}" if path else "the object"


def _unsavable(value: Any, path: str) -> str:
    kind = type(value).__name__
    if hasattr(value, "state_dict") and callable(value.state_dict):
        return (
            f"gnn.save: {_where(path)} is a {kind}, a whole object; pass model.state_dict() "
            "(or optimizer.state_dict()) and rebuild the object in code before "
            "load_state_dict: gnn saves no pickled objects"
        )
    if isinstance(value, argparse.Namespace):
        return f"gnn.save: {_where(path)} is an argparse Namespace; save vars(args) instead"
    return (
        f"gnn.save: {_where(path)} is a {kind}; gnn saves Tensors, arrays, numbers, strings, "
        "None, and lists, tuples and dicts of them (no pickled objects)"
    )


def _is_flat(obj: Any) -> bool:
    """A dict of name -> Tensor or array: written exactly as gnn.io.save writes it."""
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) for k in obj)
        and all(isinstance(v, (Tensor, np.ndarray)) for v in obj.values())
    )


def save(
    obj: Any,
    f: str | os.PathLike | BinaryIO,
    metadata: dict[str, str] | None = None,
    **kwargs: Any,
) -> None:
    """Write `obj` (tensors, arrays, numbers, strings, None; lists, tuples and dicts of them) to
    a path (atomically) or an open binary file, as safetensors.

    `metadata` adds string entries to the file's header. PyTorch's pickle_protocol and
    _use_new_zipfile_serialization are accepted and mean nothing here (there is no pickle).
    """
    for k in kwargs:
        if k not in ("pickle_protocol", "_use_new_zipfile_serialization", "pickle_module"):
            raise TypeError(f"gnn.save: unexpected keyword argument {k!r}")
    if kwargs.get("pickle_module") is not None:
        raise TypeError("gnn.save: pickle_module is not supported: gnn never pickles")
    if isinstance(obj, Mapping) and not all(isinstance(k, str) for k in obj):
        bad = next(k for k in obj if not isinstance(k, str))
        raise TypeError(f"gnn.save: keys must be strings at the top level, got {bad!r}")
    meta = dict(metadata or {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise TypeError("gnn.save: metadata must map strings to strings")
    if STRUCTURE_KEY in meta:
        raise ValueError(f"gnn.save: metadata key {STRUCTURE_KEY!r} is gnn's own")
    path = _as_path(f)
    if _is_flat(obj) and path is not None:
        _io.save(obj, path, meta)  # the plain weights file, as before
        return
    writer = _Writer()
    if _is_flat(obj):
        writer.arrays = {k: _io._host_array(v, k, "gnn.save") for k, v in obj.items()}
    else:
        if not isinstance(obj, (Mapping, list, tuple)) and hasattr(obj, "state_dict"):
            raise TypeError(_unsavable(obj, ""))
        structure = {"version": STRUCTURE_VERSION, "root": writer.node(obj, "", 0)}
        meta[STRUCTURE_KEY] = json.dumps(structure, allow_nan=False)
    if path is not None:
        _io._write_atomic(writer.arrays, path, meta)
        return
    write = getattr(f, "write", None)  # not a path, so a file object (checked here)
    if not callable(write):
        raise TypeError(
            f"gnn.save: f must be a path or a binary file open for writing, got {type(f).__name__}"
        )
    from safetensors.numpy import save as to_bytes

    write(to_bytes(writer.arrays, metadata=meta or None))


def _as_path(f: Any) -> str | None:
    if isinstance(f, (str, os.PathLike)):
        return os.fspath(f)
    return None


# ---- loading ----------------------------------------------------------------------------------

_ZIP_MAGIC = b"PK\x03\x04"


def _refuse_pickles(head: bytes, name: str) -> None:
    """Raise a ValueError that says what to do when the file is a PyTorch pickle."""
    if head.startswith(_ZIP_MAGIC):
        what = "a PyTorch file (torch.save's zip of pickles)"
    elif len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        what = "a pickle (e.g. an older torch.save)"
    else:
        return
    raise ValueError(f"{name}: not a valid safetensors file: it is {what}. {_PICKLE_HELP}")


class _Reader:
    """Rebuilds the saved object from its JSON structure and the file's arrays."""

    def __init__(self, name: str, arrays: dict[str, np.ndarray], place: Callable) -> None:
        self.name, self.arrays, self.place = name, arrays, place
        self._made: dict[str, Tensor] = {}  # a tensor saved once, referenced twice: one Tensor

    def bad(self, problem: str) -> ValueError:
        return ValueError(f"{self.name}: malformed gnn.structure: {problem}")

    def node(self, n: Any, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise self.bad(f"nested deeper than {_MAX_DEPTH} levels")
        if n is None or isinstance(n, (bool, int, float, str)):
            return n
        if isinstance(n, list):
            return [self.node(v, depth + 1) for v in n]
        if not isinstance(n, dict):
            raise self.bad(f"unexpected {type(n).__name__}")
        tag = next((t for t in _TAGS if t in n), None)
        if tag is None:
            raise self.bad(f"an object without a known tag ({sorted(n)[:3]})")
        v = n[tag]
        if tag == "dict":
            if not isinstance(v, list) or not all(isinstance(p, list) and len(p) == 2 for p in v):
                raise self.bad("'dict' must be a list of [key, value] pairs")
            out = {}
            for k, item in v:
                if not (k is None or isinstance(k, (str, int, float, bool))):
                    raise self.bad(f"a dict key of type {type(k).__name__}")
                out[k] = self.node(item, depth + 1)
            return out
        if tag == "tuple":
            if not isinstance(v, list):
                raise self.bad("'tuple' must be a list")
            return tuple(self.node(x, depth + 1) for x in v)
        if tag == "float":
            if v not in ("nan", "inf", "-inf"):
                raise self.bad(f"float {v!r} is not nan, inf or -inf")
            return float(v)
        if not isinstance(v, str) or v not in self.arrays:
            raise self.bad(f"{tag} {v!r} names no tensor in the file")
        if tag == "ndarray":
            return self.arrays[v]
        device = n.get("device", "cpu")
        if not isinstance(device, str):
            raise self.bad(f"device {device!r} is not a string")
        if v not in self._made:
            self._made[v] = self.place(self.arrays[v], device)
        return self._made[v]


def _placer(map_location: Any, name: str) -> Callable[[np.ndarray, str], Tensor]:
    """(host array, saved device name) -> Tensor, following torch.load's map_location forms."""

    def on(arr: np.ndarray, device: Any) -> Tensor:
        be = get_backend(device)
        return Tensor.wrap(be.asarray(arr), be)

    def saved_or_fail(arr: np.ndarray, saved: str) -> Tensor:
        try:
            return on(arr, saved)
        except (RuntimeError, ValueError) as exc:
            raise RuntimeError(
                f"{name}: a tensor was saved on {saved!r}, which is not usable here ({exc}); "
                "pass map_location='cpu' (or another device) to gnn.load"
            ) from None

    if map_location is None:
        return saved_or_fail
    if isinstance(map_location, (str, Device)):
        target = parse_device(map_location)
        return lambda arr, saved: on(arr, target)
    if isinstance(map_location, Mapping):
        table = {str(parse_device(k)): v for k, v in map_location.items()}
        return lambda arr, saved: saved_or_fail(
            arr, str(table.get(str(parse_device(saved)), saved))
        )
    if callable(map_location):

        def call(arr: np.ndarray, saved: str) -> Tensor:
            # torch's form is fn(storage, location) -> storage; here the CPU tensor stands in for
            # the storage, so `lambda storage, loc: storage` keeps tensors on the CPU.
            out = map_location(on(arr, "cpu"), saved)
            if isinstance(out, Tensor):
                return out
            if isinstance(out, (str, Device)):
                return on(arr, out)
            if out is None:
                return saved_or_fail(arr, saved)
            raise TypeError(
                f"gnn.load: map_location returned a {type(out).__name__}; expected a Tensor, "
                "a device or None"
            )

        return call
    raise TypeError(
        "gnn.load: map_location must be None, a device, a dict of device -> device, or a "
        f"function, got {type(map_location).__name__}"
    )


def load(
    f: str | os.PathLike | BinaryIO,
    map_location: Any = None,
    weights_only: bool | None = None,
    mmap: bool | None = None,
    device: Any = None,
    **kwargs: Any,
) -> Any:
    """Read what gnn.save wrote (or any safetensors file) from a path or an open binary file.

    Tensors go where map_location says (a device, a dict of saved -> new device, or
    fn(tensor, saved_device)); by default to the device they were saved from, and tensors of a
    plain weights file to the default device. `device=` is gnn's older name for map_location.
    weights_only is accepted with any value: nothing here ever unpickles. A PyTorch pickle is
    refused with a ValueError that says how to convert it.
    """
    if kwargs.get("pickle_module") is not None:
        raise TypeError("gnn.load: pickle_module is not supported: gnn never unpickles")
    unknown = set(kwargs) - {"pickle_module", "encoding"}
    if unknown:
        raise TypeError(f"gnn.load: unexpected keyword argument {sorted(unknown)[0]!r}")
    if device is not None:
        if map_location is not None:
            raise TypeError("gnn.load: give map_location or device, not both")
        map_location = device
    path = _as_path(f)
    if path is not None:
        if os.path.isdir(path):  # before open(), which would say IsADirectoryError
            raise ValueError(f"{path}: is a folder, not a gnn.save file; give the path of a file")
        with open(path, "rb") as fh:
            _refuse_pickles(fh.read(8), path)
        return _load_path(path, map_location, path)
    read = getattr(f, "read", None)  # not a path, so a file object (checked here)
    if not callable(read):
        raise TypeError(
            f"gnn.load: f must be a path or a binary file open for reading, got {type(f).__name__}"
        )
    name = str(getattr(f, "name", "<file object>"))
    data = read()
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"gnn.load: {name} was opened in text mode; open it with 'rb'")
    _refuse_pickles(bytes(data[:8]), name)
    # The checks and the reader work on files: go through a private temporary copy.
    fd, tmp = tempfile.mkstemp(suffix=".safetensors")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        try:
            return _load_path(tmp, map_location, name)
        except ValueError as exc:
            raise ValueError(str(exc).replace(tmp, name)) from None
    finally:
        os.remove(tmp)


def _load_path(path: str, map_location: Any, name: str) -> Any:
    arrays, metadata = _io._read_arrays(path)
    text = metadata.get(STRUCTURE_KEY)
    if text is None:  # a plain weights file: name -> Tensor, as gnn.io.load gives
        if map_location is None or isinstance(map_location, (str, Device)):
            be = get_backend(map_location)
            return {k: Tensor.wrap(be.asarray(a), be) for k, a in arrays.items()}
        place = _placer(map_location, name)
        return {k: place(a, "cpu") for k, a in arrays.items()}
    try:
        structure = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"{name}: the gnn.structure metadata is not valid JSON ({exc})") from None
    if not isinstance(structure, dict) or "root" not in structure:
        raise ValueError(f"{name}: malformed gnn.structure: no 'root'")
    if structure.get("version") != STRUCTURE_VERSION:
        raise ValueError(
            f"{name}: gnn.structure version {structure.get('version')!r} is not supported "
            f"(this gnn reads version {STRUCTURE_VERSION})"
        )
    try:
        return _Reader(name, arrays, _placer(map_location, name)).node(structure["root"], 0)
    except RecursionError:
        raise ValueError(f"{name}: malformed gnn.structure: nested too deeply") from None
