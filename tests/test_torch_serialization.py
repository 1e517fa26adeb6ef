"""gnn.save / gnn.load as PyTorch scripts use them: nested checkpoints, file objects,
map_location, weights_only, and the refusal of pickles and whole objects."""

from __future__ import annotations

import argparse
import io
import json
import math
import pickle

import numpy as np
import pytest

import gnn
from gnn import nn, optim
from gnn.serialization import STRUCTURE_KEY


def _trained() -> tuple[nn.Module, optim.Optimizer]:
    gnn.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2)).double()
    opt = optim.Adam(model.parameters(), lr=0.01, betas=(0.8, 0.9))
    for _ in range(2):
        opt.zero_grad()
        model(gnn.randn(5, 3, dtype="float64")).pow(2).mean().backward()
        opt.step()
    return model, opt


def test_nested_checkpoint_round_trip_and_resume(tmp_path) -> None:
    model, opt = _trained()
    ckpt = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "iter_num": 2,
        "best_val_loss": 1.25,
        "not_a_number": float("nan"),
        "config": {"n_layer": 2, "bias": False, "name": "tiny", "dropout": 0.0, "none": None},
        "history": [1.0, 0.5, (3, "x")],
        "table": {0: "zero", 1: np.arange(3)},
    }
    path = tmp_path / "ckpt.pt"
    gnn.save(ckpt, path)
    got = gnn.load(path, map_location="cpu", weights_only=True)
    assert got["iter_num"] == 2 and isinstance(got["iter_num"], int)
    assert got["best_val_loss"] == 1.25 and math.isnan(got["not_a_number"])
    assert got["config"] == ckpt["config"]
    assert got["history"] == [1.0, 0.5, (3, "x")] and isinstance(got["history"][2], tuple)
    assert got["table"][0] == "zero" and isinstance(got["table"][1], np.ndarray)
    np.testing.assert_array_equal(got["table"][1], np.arange(3))
    assert list(got["model"]) == list(ckpt["model"])
    for k, v in ckpt["model"].items():
        assert isinstance(got["model"][k], gnn.Tensor) and got["model"][k].dtype == v.dtype
        assert got["model"][k].shape == v.shape  # 0-d num_batches_tracked stays 0-d
        np.testing.assert_array_equal(got["model"][k].numpy(), v.numpy())
    assert got["optimizer"]["param_groups"][0]["betas"] == (0.8, 0.9)
    assert sorted(got["optimizer"]["state"]) == sorted(ckpt["optimizer"]["state"])

    # Resume: a fresh model and optimizer loaded from the file train on exactly as the originals.
    model2, opt2 = _trained()
    model2.load_state_dict(got["model"])
    opt2.load_state_dict(got["optimizer"])
    x = gnn.randn(5, 3, dtype="float64")
    for m, o in ((model, opt), (model2, opt2)):
        o.zero_grad()
        m(x).pow(2).mean().backward()
        o.step()
    for a, b in zip(model.parameters(), model2.parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_file_objects(tmp_path) -> None:
    obj = {"w": gnn.tensor([1.0, 2.0]), "step": 7}
    buf = io.BytesIO()
    gnn.save(obj, buf)
    buf.seek(0)
    got = gnn.load(buf)
    assert got["step"] == 7 and got["w"].tolist() == [1.0, 2.0]
    path = tmp_path / "f.bin"
    with open(path, "wb") as f:
        gnn.save({"w": gnn.ones(2)}, f)  # a flat dict through a file object too
    with open(path, "rb") as f:
        assert gnn.load(f)["w"].tolist() == [1.0, 1.0]
    with open(path, encoding="latin-1") as f, pytest.raises(TypeError, match="text mode"):
        gnn.load(f)
    with pytest.raises(TypeError, match="binary file open for writing"):
        gnn.save(obj, 42)


def test_flat_state_dicts_stay_plain_safetensors(tmp_path) -> None:
    from safetensors.numpy import load_file

    state = {"a.weight": gnn.ones(2, 3), "a.bias": np.zeros(3, np.float32)}
    gnn.save(state, tmp_path / "new.safetensors")
    gnn.io.save(state, tmp_path / "old.safetensors")
    new = (tmp_path / "new.safetensors").read_bytes()
    old = (tmp_path / "old.safetensors").read_bytes()
    assert new == old
    assert set(load_file(str(tmp_path / "new.safetensors"))) == {"a.weight", "a.bias"}
    assert STRUCTURE_KEY not in gnn.io.load_metadata(tmp_path / "new.safetensors")
    got = gnn.load(tmp_path / "old.safetensors", device="cpu")
    assert set(got) == set(state) and all(isinstance(v, gnn.Tensor) for v in got.values())


def test_nested_files_name_their_tensors_by_path(tmp_path) -> None:
    from safetensors.numpy import load_file

    gnn.save({"model": {"fc.weight": gnn.ones(2)}, "opt": [gnn.zeros(1)]}, tmp_path / "c")
    assert set(load_file(str(tmp_path / "c"))) == {"model.fc.weight", "opt.0"}


def test_a_tensor_saved_twice_is_stored_once_and_loaded_as_one(tmp_path) -> None:
    w = gnn.randn(4, 4)
    gnn.save({"encoder": {"w": w}, "decoder": {"w": w}, "n": 1}, tmp_path / "tied")
    from safetensors.numpy import load_file

    assert len(load_file(str(tmp_path / "tied"))) == 1
    got = gnn.load(tmp_path / "tied")
    assert got["encoder"]["w"] is got["decoder"]["w"]


@pytest.mark.parametrize(
    "map_location",
    ["cpu", gnn.device("cpu"), {"cpu": "cpu"}, lambda storage, loc: storage, None],
    ids=["str", "device", "dict", "lambda", "none"],
)
def test_map_location_forms(tmp_path, map_location) -> None:
    gnn.save({"w": gnn.ones(3), "k": 1}, tmp_path / "m")
    got = gnn.load(tmp_path / "m", map_location=map_location)
    assert got["w"].device == gnn.device("cpu") and got["w"].tolist() == [1.0, 1.0, 1.0]
    assert gnn.load(tmp_path / "m", map_location=lambda t, loc: "cpu")["w"].is_cpu
    with pytest.raises(TypeError, match="map_location must be None, a device"):
        gnn.load(tmp_path / "m", map_location=3)
    with pytest.raises(TypeError, match="not both"):
        gnn.load(tmp_path / "m", map_location="cpu", device="cpu")


def test_weights_only_and_safe_globals_are_accepted(tmp_path) -> None:
    gnn.save({"w": gnn.ones(1), "e": 3}, tmp_path / "w")
    for weights_only in (True, False, None):
        assert gnn.load(tmp_path / "w", weights_only=weights_only)["e"] == 3
    with gnn.serialization.safe_globals([argparse.Namespace]):
        assert gnn.load(tmp_path / "w")["e"] == 3
    gnn.serialization.add_safe_globals([argparse.Namespace])
    assert gnn.serialization.get_safe_globals() == []
    with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"):
        gnn.load(tmp_path / "w", bogus=1)
    with pytest.raises(TypeError, match="never unpickles"):
        gnn.load(tmp_path / "w", pickle_module=pickle)


def test_whole_objects_are_refused_with_what_to_do(tmp_path) -> None:
    model, opt = _trained()
    with pytest.raises(TypeError, match=r"pass model\.state_dict\(\)"):
        gnn.save(model, tmp_path / "m")
    with pytest.raises(TypeError, match=r"entry 'model' is a Sequential, a whole object"):
        gnn.save({"model": model}, tmp_path / "m")
    with pytest.raises(TypeError, match=r"entry 'opt' is a Adam"):
        gnn.save({"opt": opt, "x": 1}, tmp_path / "m")
    with pytest.raises(TypeError, match=r"argparse Namespace; save vars\(args\)"):
        gnn.save({"args": argparse.Namespace(lr=1)}, tmp_path / "m")
    with pytest.raises(TypeError, match=r"entry 'f' is a function"):
        gnn.save({"f": lambda: 1}, tmp_path / "m")
    with pytest.raises(TypeError, match="keys must be strings at the top level"):
        gnn.save({1: 2}, tmp_path / "m")
    with pytest.raises(TypeError, match="has a key of type tuple"):
        gnn.save({"a": {(1, 2): 3}}, tmp_path / "m")
    assert not any(tmp_path.iterdir())


def test_pickles_are_refused_with_how_to_convert(tmp_path) -> None:
    path = tmp_path / "old.pt"
    path.write_bytes(pickle.dumps({"weight": [1.0]}, protocol=2))
    with pytest.raises(ValueError, match=r"it is a pickle .* gnn does not read pickles") as info:
        gnn.load(path)
    assert "gnn.save(torch.load(" in str(info.value) and str(path) in str(info.value)
    zipped = tmp_path / "new.pt"
    zipped.write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    with pytest.raises(ValueError, match=r"torch.save's zip of pickles"):
        gnn.load(zipped)
    with pytest.raises(ValueError, match=r"<file object>: not a valid safetensors file: it is a"):
        gnn.load(io.BytesIO(zipped.read_bytes()))


def test_a_real_pytorch_checkpoint_is_refused_and_converts(tmp_path) -> None:
    torch = pytest.importorskip("torch")
    lin = torch.nn.Linear(3, 2).double()
    ckpt = {"model": lin.state_dict(), "epoch": 4, "opt": torch.optim.SGD(lin.parameters(),
            lr=0.1, momentum=0.9).state_dict()}  # fmt: skip
    pt = tmp_path / "ckpt.pt"
    torch.save(ckpt, pt)
    with pytest.raises(ValueError, match="PyTorch file"):
        gnn.load(pt)
    gnn.save(torch.load(pt, weights_only=True), tmp_path / "ckpt.gnn")  # the conversion offered
    got = gnn.load(tmp_path / "ckpt.gnn")
    assert got["epoch"] == 4 and got["opt"]["param_groups"][0]["momentum"] == 0.9
    ours = gnn.nn.Linear(3, 2).double()
    ours.load_state_dict(got["model"])
    np.testing.assert_array_equal(ours.weight.numpy(), lin.weight.detach().numpy())


def test_malformed_structures_are_value_errors_naming_the_file(tmp_path) -> None:
    bad = [
        "not json",
        json.dumps({"version": 99, "root": 1}),
        json.dumps({"version": 1}),
        json.dumps({"version": 1, "root": {"tensor": "missing"}}),
        json.dumps({"version": 1, "root": {"what": 1}}),
        json.dumps({"version": 1, "root": {"dict": [[1]]}}),
        json.dumps({"version": 1, "root": {"float": "1.5"}}),
    ]
    for i, text in enumerate(bad):
        path = tmp_path / f"b{i}"
        gnn.io.save({"x": np.zeros(1)}, path, metadata={STRUCTURE_KEY: text})
        with pytest.raises(ValueError, match=str(path)):
            gnn.load(path)


def test_user_metadata_and_deep_nesting(tmp_path) -> None:
    gnn.save({"a": 1}, tmp_path / "m", metadata={"note": "hi"})
    assert gnn.io.load_metadata(tmp_path / "m")["note"] == "hi"
    with pytest.raises(ValueError, match="is gnn's own"):
        gnn.save({"a": 1}, tmp_path / "m", metadata={STRUCTURE_KEY: "x"})
    deep: list = []
    for _ in range(300):
        deep = [deep]
    with pytest.raises(ValueError, match="nests deeper than 200"):
        gnn.save({"d": deep}, tmp_path / "deep")


def test_gpu_tensors_come_back_on_their_device(tmp_path, device: str) -> None:
    gnn.save({"w": gnn.ones(2, device=device), "n": 1}, tmp_path / "g")
    assert gnn.load(tmp_path / "g")["w"].device.type == device
    assert gnn.load(tmp_path / "g", map_location="cpu")["w"].is_cpu
    assert gnn.load(tmp_path / "g", map_location={device: "cpu"})["w"].is_cpu
