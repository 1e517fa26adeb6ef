"""gnn.save / gnn.load: safetensors round trips, compatibility with the safetensors library,
atomic writes, and clear errors (never code execution, never big allocations) on broken files."""

from __future__ import annotations

import json
import os
import pickle
import struct
import subprocess
import sys

import numpy as np
import pytest

import gnn
from gnn import io, nn

# ---- round trips -----------------------------------------------------------------------------


def test_round_trip_keeps_dtypes_shapes_and_values(tmp_path) -> None:
    rng = np.random.default_rng(0)
    state = {
        "f16": rng.standard_normal((2, 3)).astype(np.float16),
        "f32": gnn.tensor(rng.standard_normal((4,)), dtype="float32"),
        "f64": gnn.tensor(rng.standard_normal((2, 2, 2)), dtype="float64"),
        "i32": np.arange(5, dtype=np.int32),
        "i64": gnn.tensor(np.array(7, dtype=np.int64)),  # 0-d
        "b": np.array([True, False]),
        "u8": np.arange(3, dtype=np.uint8),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "strided": np.arange(12.0).reshape(3, 4)[:, ::2],  # not contiguous
    }
    path = tmp_path / "w.safetensors"
    gnn.save(state, path)
    got = gnn.load(path)
    assert list(got) == sorted(got, key=list(got).index)  # a dict of Tensors
    assert set(got) == set(state)
    for k, v in state.items():
        want = v.numpy() if isinstance(v, gnn.Tensor) else v
        assert isinstance(got[k], gnn.Tensor)
        assert got[k].device == "cpu"
        assert got[k].dtype == want.dtype, k
        assert got[k].shape == want.shape, k  # assert_array_equal alone would broadcast () to (1,)
        np.testing.assert_array_equal(got[k].numpy(), want)


def test_files_are_plain_safetensors(tmp_path) -> None:
    from safetensors.numpy import load_file, save_file

    path = tmp_path / "a.safetensors"
    gnn.save({"w": np.ones((2, 3), np.float32)}, path, metadata={"note": "hi"})
    np.testing.assert_array_equal(load_file(str(path))["w"], np.ones((2, 3), np.float32))
    assert io.load_metadata(path) == {"note": "hi"}
    other = tmp_path / "b.safetensors"
    save_file({"x": np.arange(4.0), "y": np.eye(2, dtype=np.int64)}, str(other), {"k": "v"})
    got = gnn.load(other)
    np.testing.assert_array_equal(got["x"].numpy(), np.arange(4.0))
    np.testing.assert_array_equal(got["y"].numpy(), np.eye(2, dtype=np.int64))


def test_module_state_dict_round_trip(tmp_path) -> None:
    gnn.manual_seed(0)

    def make() -> nn.Module:
        return nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 2))

    a, b = make(), make()
    a(gnn.randn(6, 3))  # running statistics and num_batches_tracked (a 0-d int64) move
    gnn.save(a.state_dict(), tmp_path / "m.safetensors")
    state = gnn.load(tmp_path / "m.safetensors", device="cpu")
    assert set(state) == set(a.state_dict())
    assert state["1.num_batches_tracked"].shape == ()
    b.load_state_dict(state)  # strict: every key and shape must fit
    a.eval(), b.eval()
    x = gnn.randn(4, 3)
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
    assert int(b[1].num_batches_tracked.item()) == 1


def test_bfloat16_is_read_as_bfloat16(tmp_path) -> None:
    values = np.array([1.0, -2.5, 3.140625, 0.0], dtype=np.float32)  # exact in bfloat16
    raw = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
    path = _craft(tmp_path, {"b": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 8]}}, raw)
    got = gnn.load(path)["b"]
    assert got.dtype == gnn.bfloat16  # ml_dtypes' bfloat16, as PyTorch keeps it
    np.testing.assert_array_equal(got.float().numpy(), values.reshape(2, 2))


def test_save_errors(tmp_path) -> None:
    with pytest.raises(TypeError, match="pass model.state_dict()"):
        gnn.save(nn.Linear(2, 2), tmp_path / "x")
    with pytest.raises(TypeError, match="keys must be strings"):
        gnn.save({1: np.zeros(2)}, tmp_path / "x")
    with pytest.raises(TypeError, match="'a' has dtype object"):
        gnn.save({"a": np.array([None])}, tmp_path / "x")
    with pytest.raises(TypeError, match="metadata must map strings to strings"):
        gnn.save({"a": np.zeros(1)}, tmp_path / "x", metadata={"n": 1})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        gnn.save({"a": np.zeros(1)}, tmp_path / "no" / "such" / "x")
    assert not any(tmp_path.iterdir())


# ---- atomic writes ---------------------------------------------------------------------------


def test_write_is_atomic_when_it_fails(tmp_path, monkeypatch) -> None:
    path = tmp_path / "w.safetensors"
    gnn.save({"a": np.zeros(3)}, path)
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk on fire"):
        gnn.save({"a": np.ones(300)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before  # the old file is whole
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]  # no temp file left


def test_write_replaces_and_fsyncs(tmp_path, monkeypatch) -> None:
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    path = tmp_path / "w.safetensors"
    gnn.save({"a": np.zeros(3)}, path)
    gnn.save({"a": np.ones(3)}, path)
    np.testing.assert_array_equal(gnn.load(path)["a"].numpy(), np.ones(3))
    assert len(synced) >= 4  # the file and its folder, twice
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


# ---- broken and hostile files ----------------------------------------------------------------


def _craft(tmp_path, header: dict | bytes, data: bytes = b"", length: int | None = None):
    """A file with an 8-byte length, a header and data, each of our choosing."""
    body = header if isinstance(header, bytes) else json.dumps(header).encode()
    n = len(body) if length is None else length
    path = tmp_path / "crafted.safetensors"
    path.write_bytes(struct.pack("<Q", n) + body + data)
    return path


def _entry(dtype="F32", shape=(2,), offsets=(0, 8)) -> dict:
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


HOSTILE = [
    ("empty", lambda t: _raw(t, b""), "fewer than the 8-byte header length"),
    ("short", lambda t: _raw(t, b"\x01\x02\x03"), "fewer than the 8-byte header length"),
    ("huge length", lambda t: _craft(t, {}, length=2**63), "the header claims 9223372036854775808"),
    ("truncated header", lambda t: _craft(t, {"a": _entry()}, length=500), "truncated"),
    ("not utf8", lambda t: _craft(t, b"\xff\xfe{}"), "not UTF-8"),
    ("not json", lambda t: _craft(t, b"{nope"), "not valid JSON"),
    ("json array", lambda t: _craft(t, b"[1, 2]"), "not a JSON object"),
    ("deep nesting", lambda t: _craft(t, b'{"a":' + b"[" * 10**5 + b"]" * 10**5 + b"}"), "deep"),
    ("nan constant", lambda t: _craft(t, b'{"a": NaN}'), "not valid JSON"),
    ("duplicate", lambda t: _craft(t, b'{"a": 1, "a": 2}'), "duplicate key 'a'"),
    ("entry not object", lambda t: _craft(t, {"a": 3}), "'a': its description is not"),
    (
        "unknown dtype",
        lambda t: _craft(t, {"a": _entry("F8_E4M3", (2,), (0, 2))}, b"xx"),
        "F8_E4M3",
    ),
    ("negative dim", lambda t: _craft(t, {"a": _entry(shape=(-2,))}, bytes(8)), "shape [-2]"),
    ("float dim", lambda t: _craft(t, {"a": _entry(shape=(2.0,))}, bytes(8)), "shape [2.0]"),
    ("offsets reversed", lambda t: _craft(t, {"a": _entry(offsets=(8, 0))}, bytes(8)), "[8, 0]"),
    ("past the end", lambda t: _craft(t, {"a": _entry(offsets=(0, 8))}, bytes(4)), "reach past"),
    ("size mismatch", lambda t: _craft(t, {"a": _entry(shape=(3,))}, bytes(8)), "needs 12 bytes"),
    (
        "huge shape",  # claims 2**62 elements over 8 bytes: refused before any allocation
        lambda t: _craft(t, {"a": _entry(shape=(2**31, 2**31))}, bytes(8)),
        "needs 18446744073709551616 bytes",
    ),
    (
        "overlap",
        lambda t: _craft(t, {"a": _entry(), "b": _entry(offsets=(4, 12))}, bytes(12)),
        "overlaps",
    ),
    ("gap", lambda t: _craft(t, {"a": _entry(offsets=(4, 12))}, bytes(12)), "leaves a gap"),
    ("trailing bytes", lambda t: _craft(t, {"a": _entry()}, bytes(20)), "cover 8 data bytes"),
    ("bad metadata", lambda t: _craft(t, {"__metadata__": {"k": 1}}), "__metadata__ must map"),
]


def _raw(tmp_path, content: bytes):
    path = tmp_path / "raw.safetensors"
    path.write_bytes(content)
    return path


@pytest.mark.parametrize("make, message", [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_broken_files_give_clear_errors(tmp_path, make, message) -> None:
    path = make(tmp_path)
    with pytest.raises(ValueError) as err:
        gnn.load(path)
    text = str(err.value)
    assert str(path) in text and "not a valid safetensors file" in text
    assert message in text


def test_a_folder_is_a_clear_error_that_asks_for_a_file(tmp_path) -> None:
    folder = tmp_path / "weights.safetensors"
    folder.mkdir()
    for read in (io.load, io.load_metadata, io.read_header, gnn.load):
        with pytest.raises(ValueError) as err:
            read(folder)
        assert not isinstance(err.value, OSError)  # not IsADirectoryError from open()
        text = str(err.value)
        assert text.startswith(f"{folder}: is a folder") and "path of a file" in text


def test_a_real_file_cut_short_anywhere_is_refused(tmp_path) -> None:
    gnn.manual_seed(0)
    good = tmp_path / "good.safetensors"
    gnn.save({"a": gnn.randn(10, 10), "b": gnn.randn(5), "n": np.array(3)}, good)
    blob = good.read_bytes()
    cut = tmp_path / "cut.safetensors"
    for size in (0, 7, 8, 20, len(blob) // 2, len(blob) - 1):
        cut.write_bytes(blob[:size])
        with pytest.raises(ValueError, match="not a valid safetensors file") as err:
            gnn.load(cut)
        assert any(w in str(err.value) for w in ("truncated", "fewer than the 8-byte")), size


@pytest.mark.parametrize("make", [h[1] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_broken_files_never_make_us_allocate_what_they_claim(tmp_path, make) -> None:
    """Memory is bounded by the file's size (its header is read and decoded once: about 2x for
    a header-only file), never by the sizes a header claims (2**63 bytes, 2**62 elements)."""
    import tracemalloc

    path = make(tmp_path)
    size = os.path.getsize(path)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError):
            gnn.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * size + 64 * 1024, f"{peak} bytes allocated for a {size}-byte file"


def test_a_pickle_is_never_executed(tmp_path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "model.pt"
    path.write_bytes(pickle.dumps({"weight": Evil()}))
    with pytest.raises(ValueError, match="not a valid safetensors file"):
        gnn.load(path)
    with pytest.raises(ValueError, match="not a valid safetensors file"):
        gnn.load_checkpoint(path, nn.Linear(2, 2))
    assert not marker.exists()


def test_import_gnn_does_not_import_safetensors() -> None:
    code = (
        "import sys, gnn; assert 'safetensors' not in sys.modules and 'gnn.io' not in sys.modules;"
        "gnn.save; assert 'gnn.io' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- devices ---------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not gnn.cuda_available(), reason="needs CuPy and a CUDA device")
def test_saved_on_gpu_loads_on_cpu_and_back(tmp_path) -> None:
    gnn.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).to("cuda")
    gnn.save(model.state_dict(), tmp_path / "gpu.safetensors")
    state = gnn.load(tmp_path / "gpu.safetensors", device="cpu")
    assert all(t.device == "cpu" for t in state.values())
    cpu_model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    cpu_model.load_state_dict(state)
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    want = model(gnn.tensor(x, device="cuda")).numpy()
    np.testing.assert_allclose(cpu_model(gnn.tensor(x)).numpy(), want, rtol=1e-5, atol=1e-6)
    back = gnn.load(tmp_path / "gpu.safetensors", device="cuda")
    assert all(t.device == "cuda" for t in back.values())
    for k, t in model.state_dict().items():
        np.testing.assert_array_equal(back[k].numpy(), t.numpy())
