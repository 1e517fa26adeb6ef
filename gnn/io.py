"""Weights files and checkpoints in safetensors: save/load state dicts, save/load training state.

No pickle anywhere. Every file is checked before safetensors reads it (header length against the
file size, the JSON header parsed here, every tensor's dtype, shape and byte span), so a broken or
hostile file gives a ValueError naming the file and the problem, never runs anything and never
makes us allocate more than the file holds. Writes are atomic: a temp file in the same folder,
flushed and fsynced, then renamed over the target, then the folder fsynced. Format: docs/io.md.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
from collections.abc import Mapping
from typing import Any

import numpy as np

from gnn import config
from gnn.backend import get_backend
from gnn.dtypes import bfloat16_dtype
from gnn.tensor import Tensor

# safetensors dtype name -> (NumPy dtype, bytes per element); BF16 is read as ml_dtypes' bfloat16.
_DTYPES: dict[str, tuple[Any, int]] = {
    "BOOL": (np.bool_, 1), "U8": (np.uint8, 1), "I8": (np.int8, 1), "U16": (np.uint16, 2),
    "I16": (np.int16, 2), "F16": (np.float16, 2), "BF16": (None, 2), "U32": (np.uint32, 4),
    "I32": (np.int32, 4), "F32": (np.float32, 4), "U64": (np.uint64, 8), "I64": (np.int64, 8),
    "F64": (np.float64, 8),
}  # fmt: skip
_NUMPY_TO_ST = {np.dtype(dt): name for name, (dt, _) in _DTYPES.items() if dt is not None}
_MAX_HEADER = 100_000_000  # the limit safetensors itself enforces
# NumPy's limit on dimensions (64 since NumPy 2, 32 before): a deeper shape cannot be an array
_MAX_DIMS = 64 if int(np.__version__.split(".")[0]) >= 2 else 32
_MAX_BYTES = np.iinfo(np.intp).max  # NumPy's limit on size x itemsize, zero-size arrays too
CHECKPOINT_KEY = "gnn.checkpoint"  # the metadata entry that holds a checkpoint's JSON
CHECKPOINT_VERSION = 1


# ---- reading and checking a file ------------------------------------------------------------


class _Entry:
    """One tensor as the header describes it (offsets are relative to the data section)."""

    __slots__ = ("name", "dtype", "shape", "begin", "end")

    def __init__(self, name: str, dtype: str, shape: tuple[int, ...], begin: int, end: int):
        self.name, self.dtype, self.shape, self.begin, self.end = name, dtype, shape, begin, end


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def read_header(path: str | os.PathLike) -> tuple[list[_Entry], dict[str, str], int]:
    """Check a safetensors file; returns (tensor entries by offset, metadata, data start).

    Raises ValueError naming the file and what is wrong with it.
    """
    path = os.fspath(path)

    def bad(problem: str) -> ValueError:
        return ValueError(f"{path}: not a valid safetensors file: {problem}")

    if os.path.isdir(path):  # open() would say IsADirectoryError (PermissionError on Windows)
        raise ValueError(f"{path}: is a folder, not a safetensors file; give the path of a file")
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < 8:
            raise bad(f"the file has {size} bytes, fewer than the 8-byte header length")
        n = int.from_bytes(f.read(8), "little")
        if n > size - 8:
            raise bad(
                f"the header claims {n} bytes but the file holds only {size - 8} after the "
                "length field (truncated, or not safetensors)"
            )
        if n > _MAX_HEADER:
            raise bad(f"the header claims {n} bytes, more than the {_MAX_HEADER} allowed")
        raw = f.read(n)
    if len(raw) != n:
        raise bad(f"could read only {len(raw)} of the {n} header bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise bad("the header is not UTF-8 text") from None
    if not text.startswith("{"):
        raise bad("the header is not a JSON object")
    try:
        header = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except RecursionError:
        raise bad("the header JSON is nested too deeply") from None
    except ValueError as e:  # json.JSONDecodeError is a ValueError
        raise bad(f"the header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise bad("the header is not a JSON object")

    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise bad("__metadata__ must map strings to strings")
    data_size = size - 8 - n
    entries = []
    for name, info in header.items():
        if not isinstance(info, dict):
            raise bad(f"tensor {name!r}: its description is not a JSON object")
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in _DTYPES:
            known = ", ".join(_DTYPES)
            raise bad(f"tensor {name!r}: dtype {dtype!r} is not supported (supported: {known})")
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            raise bad(f"tensor {name!r}: shape {shape!r} is not a list of non-negative integers")
        if len(shape) > _MAX_DIMS:
            raise bad(
                f"tensor {name!r}: {len(shape)} dimensions, more than the {_MAX_DIMS} allowed"
            )
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(_is_int(o) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1]
        ):
            raise bad(
                f"tensor {name!r}: data_offsets {offsets!r} is not [begin, end], 0<=begin<=end"
            )
        begin, end = offsets
        if end > data_size:
            raise bad(
                f"tensor {name!r}: data_offsets [{begin}, {end}] reach past the {data_size} data "
                "bytes the file holds (truncated?)"
            )
        nbytes = math.prod(shape) * _DTYPES[dtype][1]
        if end - begin != nbytes:
            raise bad(
                f"tensor {name!r}: shape {shape} of {dtype} needs {nbytes} bytes, but its "
                f"data_offsets span {end - begin}"
            )
        # NumPy refuses a shape whose nonzero sizes multiply past its limit even when another
        # size is 0 (so the span check above cannot catch it)
        if math.prod(d for d in shape if d) * _DTYPES[dtype][1] > _MAX_BYTES:
            raise bad(f"tensor {name!r}: shape {shape} is too large for an array")
        entries.append(_Entry(name, dtype, tuple(shape), begin, end))
    entries.sort(key=lambda e: (e.begin, e.end))
    position = 0
    for entry in entries:  # not `e`: Python deletes the except clause's `e`, mypy flags reuse
        if entry.begin != position:
            what = "overlaps the previous tensor" if entry.begin < position else "leaves a gap"
            raise bad(
                f"tensor {entry.name!r} at byte {entry.begin} {what} (expected byte {position})"
            )
        position = entry.end
    if position != data_size:
        raise bad(f"the tensors cover {position} data bytes but the file holds {data_size}")
    return entries, dict(metadata), 8 + n


def _read_arrays(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The checked file's tensors as host arrays (in file order) and its metadata."""
    from safetensors import SafetensorError, safe_open

    path = os.fspath(path)
    entries, metadata, start = read_header(path)
    arrays: dict[str, np.ndarray] = {}
    plain = [e for e in entries if e.dtype != "BF16"]
    if plain:
        try:
            with safe_open(path, framework="numpy") as f:
                for e in plain:
                    arrays[e.name] = f.get_tensor(e.name)
        except (SafetensorError, ValueError, OverflowError, TypeError) as e:
            # what our own checks let through: still a ValueError that names the file
            raise ValueError(f"{path}: not a valid safetensors file: {e}") from None
    for entry in entries:  # not `e`: Python deletes the except clause's `e`, mypy flags reuse
        if entry.dtype == "BF16":  # safetensors' NumPy reader has no bfloat16: read the bytes
            with open(path, "rb") as f:
                f.seek(start + entry.begin)
                half = np.frombuffer(f.read(entry.end - entry.begin), dtype="<u2")
            arrays[entry.name] = half.view(bfloat16_dtype()).reshape(entry.shape)
    for entry in entries:
        got = arrays[entry.name]
        if tuple(got.shape) != entry.shape:  # safetensors disagrees with our reading: refuse
            raise ValueError(
                f"{path}: tensor {entry.name!r} read with shape {got.shape}, not {entry.shape}"
            )
    return {e.name: arrays[e.name] for e in entries}, metadata


# ---- writing --------------------------------------------------------------------------------


def _host_array(value: Any, key: str, who: str) -> np.ndarray:
    arr = value.numpy() if isinstance(value, Tensor) else value
    if not isinstance(arr, np.ndarray) and not isinstance(arr, (np.generic, int, float, bool)):
        raise TypeError(f"{who}: {key!r} is a {type(value).__name__}, expected a Tensor or array")
    arr = np.asarray(arr)
    if not arr.flags.c_contiguous:  # not np.ascontiguousarray: it turns 0-d arrays into (1,)
        arr = arr.copy(order="C")
    if arr.dtype.name == "bfloat16":  # ml_dtypes: safetensors' NumPy writer tags it BF16
        return arr
    if arr.dtype.newbyteorder("=") not in _NUMPY_TO_ST:
        raise TypeError(f"{who}: {key!r} has dtype {arr.dtype}, which safetensors cannot store")
    return arr.astype(arr.dtype.newbyteorder("<"), copy=False)


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open folders: the rename is as durable as it gets there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    """Whether a process with this id runs (when that cannot be told: assume it does)."""
    if os.name != "posix":
        return True  # no signal-0 probe: never remove what a live writer may still hold
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: it exists but belongs to someone else
        return True
    return True


def _remove_stale_temps(folder: str, base: str) -> None:
    """Remove temp files a killed save to `base` left in `folder` (our name pattern only).

    Only `.{base}.{pid}.{8 hex}.tmp` files whose writer process is gone are removed: a save in
    progress in another live process (or in this one) keeps its file.
    """
    pattern = re.compile(r"\." + re.escape(base) + r"\.(\d+)\.[0-9a-f]{8}\.tmp")
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        m = pattern.fullmatch(name)
        if m is None:
            continue
        pid = int(m.group(1))
        if pid == os.getpid() or _pid_alive(pid):
            continue
        full = os.path.join(folder, name)
        try:
            if os.path.isfile(full) and not os.path.islink(full):
                os.remove(full)
        except OSError:  # gone already, or not ours to remove: the save itself goes on
            pass


def _write_atomic(arrays: dict[str, np.ndarray], path: str, metadata: dict[str, str]) -> None:
    """Write a safetensors file so that `path` is either the old file or the whole new one."""
    from safetensors.numpy import save as to_bytes

    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"save: folder {folder!r} does not exist (for {path!r})")
    # Bytes written by us, not safetensors' save_file: it creates files with mode 0600 and gives
    # no way to fsync. Not mkstemp either (0600 too); a random name avoids clashes.
    blob = to_bytes(arrays, metadata=metadata or None)
    _remove_stale_temps(folder, os.path.basename(path))
    name = f".{os.path.basename(path)}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    tmp = os.path.join(folder, name)
    try:
        with open(tmp, "xb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        del blob
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(folder)


def save(
    state_dict: Mapping[str, Any], path: str | os.PathLike, metadata: dict[str, str] | None = None
) -> None:
    """Write a state dict (name -> Tensor or array) to a safetensors file, atomically."""
    who = "save"
    if hasattr(state_dict, "state_dict") and not isinstance(state_dict, Mapping):
        raise TypeError(f"{who}: got a {type(state_dict).__name__}; pass model.state_dict()")
    if not isinstance(state_dict, Mapping):
        raise TypeError(
            f"{who}: expected a dict of name -> Tensor, got {type(state_dict).__name__}"
        )
    arrays = {}
    for k, v in state_dict.items():
        if not isinstance(k, str):
            raise TypeError(f"{who}: keys must be strings, got {k!r}")
        arrays[k] = _host_array(v, k, who)
    meta = dict(metadata or {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise TypeError(f"{who}: metadata must map strings to strings")
    _write_atomic(arrays, os.fspath(path), meta)


def load(path: str | os.PathLike, device: Any = None) -> dict[str, Tensor]:
    """Read a safetensors file into Tensors on `device` (default: the default device)."""
    arrays, _ = _read_arrays(path)
    be = get_backend(device)
    return {k: Tensor.wrap(be.asarray(a), be) for k, a in arrays.items()}


def load_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The checked file's string metadata (its __metadata__ entry), without reading tensors."""
    return read_header(path)[1]


# ---- checkpoints ----------------------------------------------------------------------------


def _model_backend(model: Any) -> Any:
    for t in model.state_dict().values():
        return t.backend
    return get_backend("cpu")


def _rng_states(model: Any) -> dict[str, Any]:
    """Generator states of the CPU backend and of the model's device."""
    backends = {"cpu": get_backend("cpu")}
    be = _model_backend(model)
    backends[str(be.device)] = be
    return {name: be.get_rng_state() for name, be in backends.items()}


def _to_json(value: Any, what: str) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError) as e:
        raise TypeError(f"save_checkpoint: {what} cannot be stored as JSON ({e})") from None


def save_checkpoint(
    path: str | os.PathLike,
    model: Any,
    optimizer: Any = None,
    scheduler: Any = None,
    epoch: int | None = None,
    extra: Any = None,
) -> None:
    """Write model + optimizer + scheduler + RNG states + epoch to one safetensors file, atomically.

    Tensors: "model.<key>" and "optimizer.state.<param index>.<name>"; everything else is JSON in
    the metadata entry "gnn.checkpoint" (`extra` must be JSON-serialisable).
    """
    arrays: dict[str, np.ndarray] = {}
    for k, v in model.state_dict().items():
        arrays[f"model.{k}"] = _host_array(v, k, "save_checkpoint")
    record: dict[str, Any] = {"version": CHECKPOINT_VERSION, "epoch": epoch, "extra": extra}
    record["model"] = type(model).__name__
    if optimizer is not None:
        sd = optimizer.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for idx, entry in sd["state"].items():
            for name, v in entry.items():
                if isinstance(v, (Tensor, np.ndarray)):
                    arrays[f"optimizer.state.{idx}.{name}"] = _host_array(
                        v, name, "save_checkpoint"
                    )
                else:
                    scalars.setdefault(str(idx), {})[name] = v
        record["optimizer"] = {
            "class": type(optimizer).__name__,
            "param_groups": sd["param_groups"],
            "state": scalars,
        }
    if scheduler is not None:
        record["scheduler"] = {"class": type(scheduler).__name__, "state": scheduler.state_dict()}
    record["rng"] = _rng_states(model)
    record["seed"] = config.seed_state()[1]
    meta = {"format": "gnn", CHECKPOINT_KEY: _to_json(record, "the checkpoint state")}
    _write_atomic(arrays, os.fspath(path), meta)


def load_checkpoint(
    path: str | os.PathLike,
    model: Any,
    optimizer: Any = None,
    scheduler: Any = None,
    device: Any = None,
) -> dict[str, Any]:
    """Restore what save_checkpoint wrote into `model` (moved to `device` when given), `optimizer`
    and `scheduler`, and the RNG states; returns {"epoch": ..., "extra": ...}.

    Everything is checked before anything is restored: a checkpoint that does not fit (keys,
    shapes, classes, a malformed record) raises an error naming the file and changes nothing.
    """
    path = os.fspath(path)
    arrays, metadata = _read_arrays(path)
    if CHECKPOINT_KEY not in metadata:
        raise ValueError(
            f"{path}: not a gnn checkpoint (no {CHECKPOINT_KEY!r} metadata); "
            "for a plain weights file use gnn.load and model.load_state_dict"
        )
    try:
        record = json.loads(metadata[CHECKPOINT_KEY])
    except (ValueError, RecursionError) as e:
        raise ValueError(f"{path}: the checkpoint metadata is not valid JSON ({e})") from None
    _check_record(path, record, arrays)
    for obj, key in ((optimizer, "optimizer"), (scheduler, "scheduler")):
        if obj is None:
            continue
        saved = record.get(key)
        if saved is None:
            raise ValueError(f"{path}: the checkpoint holds no {key} state")
        if saved["class"] != type(obj).__name__:
            raise ValueError(
                f"{path}: the checkpoint's {key} is a {saved['class']}, got a {type(obj).__name__}"
            )

    if device is not None:
        model.to(device)
    model_state = {k[6:]: a for k, a in arrays.items() if k.startswith("model.")}
    own = model.state_dict()
    if set(model_state) != set(own) or any(
        tuple(np.shape(model_state[k])) != own[k].shape
        or np.asarray(model_state[k]).dtype.kind not in "biuf"
        for k in own
        if k in model_state
    ):
        try:
            model.load_state_dict(model_state)  # raises the full report and changes nothing
        except (RuntimeError, TypeError, ValueError) as e:
            raise type(e)(f"{path}: {e}") from None
    opt_state = None
    if optimizer is not None:
        saved = record["optimizer"]
        state: dict[int, dict[str, Any]] = {}
        for idx, entry in saved["state"].items():
            state.setdefault(int(idx), {}).update(entry)
        prefix = "optimizer.state."
        for k, a in arrays.items():
            if k.startswith(prefix):
                idx, _, name = k[len(prefix) :].partition(".")
                state.setdefault(int(idx), {})[name] = a
        opt_state = {"state": state, "param_groups": saved["param_groups"]}
    rng_targets = _checked_rng(path, record, model)
    opt_checked = sched_checked = None
    try:  # the optimizer's and scheduler's own checks, before either changes
        if optimizer is not None:
            opt_checked = optimizer.checked_state(opt_state)
        if scheduler is not None:
            sched_checked = _scheduler_state(scheduler, record["scheduler"]["state"])
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(f"{path}: malformed checkpoint: {e}") from None
    # Everything checked: now restore.
    if opt_checked is not None:
        for g, new in zip(optimizer.param_groups, opt_checked[0]):
            g.update(new)  # the same group dicts: schedulers hold them
        optimizer.state = opt_checked[1]
    model.load_state_dict(model_state)
    if scheduler is not None:
        if sched_checked is None:
            scheduler.load_state_dict(record["scheduler"]["state"])
        else:
            for k, v in sched_checked.items():
                setattr(scheduler, k, v)
    config.restore_seed(record.get("seed"))  # the seed first, so no later re-seed undoes ...
    for be, rng_state in rng_targets:  # ... the generator states
        be.set_rng_state(rng_state)
    return {"epoch": record.get("epoch"), "extra": record.get("extra")}


def _scheduler_state(scheduler: Any, state: Any) -> dict[str, Any] | None:
    """The checked scheduler state (None for a scheduler without checked_state: it loads its
    own)."""
    check = getattr(scheduler, "checked_state", None)
    return None if check is None else check(state)


def _check_record(path: str, record: Any, arrays: dict[str, np.ndarray]) -> None:
    """The checkpoint record's structure (JSON from the file: anything may be in it)."""

    def bad(problem: str) -> ValueError:
        return ValueError(f"{path}: malformed checkpoint: {problem}")

    if not isinstance(record, dict):
        raise bad("the record is not a JSON object")
    if record.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{path}: unsupported checkpoint version {record.get('version')!r}")
    opt = record.get("optimizer")
    if opt is not None:
        if not isinstance(opt, dict) or not isinstance(opt.get("class"), str):
            raise bad("'optimizer' must be an object with a 'class' name")
        groups = opt.get("param_groups")
        if not isinstance(groups, list) or not all(
            isinstance(g, dict)
            and isinstance(g.get("params"), list)
            and all(_is_int(i) for i in g["params"])
            for g in groups
        ):
            raise bad("optimizer 'param_groups' must be a list of objects with integer 'params'")
        state = opt.get("state")
        if not isinstance(state, dict) or not all(
            isinstance(k, str) and k.isdigit() and isinstance(v, dict) for k, v in state.items()
        ):
            raise bad("optimizer 'state' must map parameter indices to objects")
    for k in arrays:
        if k.startswith("optimizer.state.") and not k.split(".")[2].isdigit():
            raise bad(f"tensor {k!r} does not name a parameter index")
    sched = record.get("scheduler")
    if sched is not None and not (
        isinstance(sched, dict)
        and isinstance(sched.get("class"), str)
        and isinstance(sched.get("state"), dict)
    ):
        raise bad("'scheduler' must be an object with a 'class' name and a 'state' object")
    rng = record.get("rng")
    if rng is not None and not (
        isinstance(rng, dict) and all(isinstance(v, dict) for v in rng.values())
    ):
        raise bad("'rng' must map device names to generator states")
    seed = record.get("seed")
    if seed is not None and not _is_int(seed):
        raise bad(f"'seed' must be an integer or null, got {seed!r}")


def _checked_rng(path: str, record: dict[str, Any], model: Any) -> list[tuple[Any, Any]]:
    """(backend, state) pairs to restore: the CPU's and the model's device; each state is tried
    on its generator (and the old state put back) so that a bad one fails before any change."""
    states = record.get("rng") or {}
    targets = {"cpu": get_backend("cpu")}
    be = _model_backend(model)
    targets[str(be.device)] = be
    out = []
    for name, be in targets.items():
        state = states.get(name)
        if not state:  # {} means the backend could not report its state (CuPy)
            continue
        old = be.get_rng_state()
        try:
            be.set_rng_state(state)
        except (TypeError, ValueError, KeyError, OverflowError) as e:
            raise ValueError(
                f"{path}: malformed checkpoint: the {name} generator state is not valid ({e})"
            ) from None
        finally:
            if old:
                be.set_rng_state(old)
        out.append((be, state))
    return out


__all__ = ["load", "load_checkpoint", "load_metadata", "read_header", "save", "save_checkpoint"]
