"""DLPack: Tensor.__dlpack__ / __dlpack_device__ and gnn.from_dlpack, zero-copy with NumPy and
(where installed) PyTorch; on the GPU device with CuPy."""

from __future__ import annotations

import os

import numpy as np
import pytest

import gnn


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "int32", "float16", "bool"])
def test_numpy_round_trip_shares_memory(dtype: str) -> None:
    src = np.arange(6).reshape(2, 3).astype(dtype)
    t = gnn.from_dlpack(src)
    assert t.dtype == src.dtype and t.shape == (2, 3) and t.device == gnn.device("cpu")
    assert np.shares_memory(t.numpy(), src)
    back = np.from_dlpack(t)
    assert np.shares_memory(back, src)
    assert t.__dlpack_device__() == (1, 0)


def test_writes_show_through_both_ways() -> None:
    t = gnn.zeros(4, dtype="float64")
    view = np.from_dlpack(t)
    view[1] = 5.0
    assert t.tolist() == [0.0, 5.0, 0.0, 0.0]
    u = gnn.from_dlpack(view)
    u.array[2] = 7.0
    assert t.tolist() == [0.0, 5.0, 7.0, 0.0]
    assert not u.requires_grad and u.is_leaf


def test_non_contiguous_views_keep_their_strides() -> None:
    base = np.arange(12.0).reshape(3, 4)
    t = gnn.from_dlpack(base[:, ::2])
    np.testing.assert_array_equal(t.numpy(), base[:, ::2])
    assert np.shares_memory(t.numpy(), base)


def test_from_dlpack_refuses_what_it_cannot_take() -> None:
    with pytest.raises(TypeError, match="does not support DLPack"):
        gnn.from_dlpack([1, 2, 3])

    class Elsewhere:
        def __dlpack__(self, **kwargs: object) -> None:
            raise AssertionError("must not be called")

        def __dlpack_device__(self) -> tuple[int, int]:
            return (8, 0)  # Metal

    with pytest.raises(ValueError, match="DLPack device type 8"):
        gnn.from_dlpack(Elsewhere())
    t = gnn.ones(2)
    assert gnn.from_dlpack(t).array is t.array
    with pytest.raises(TypeError, match="expected a Tensor"):
        gnn.to_dlpack(np.ones(2))


def test_legacy_capsule_and_utils_path() -> None:
    from gnn.utils.dlpack import from_dlpack, to_dlpack

    t = gnn.arange(5)
    capsule = to_dlpack(t)
    assert type(capsule).__name__ == "PyCapsule"
    assert from_dlpack is gnn.from_dlpack


def test_pytorch_round_trip_is_zero_copy() -> None:
    torch = pytest.importorskip("torch")
    t = gnn.tensor([[1.0, 2.0], [3.0, 4.0]], dtype="float64")
    theirs = torch.from_dlpack(t)
    assert theirs.dtype == torch.float64 and tuple(theirs.shape) == (2, 2)
    theirs[0, 0] = -1.0
    assert t.tolist()[0][0] == -1.0
    ours = gnn.from_dlpack(torch.arange(6, dtype=torch.float32).reshape(2, 3))
    assert ours.dtype == np.float32 and ours.tolist() == [[0, 1, 2], [3, 4, 5]]
    src = torch.zeros(3)
    view = gnn.from_dlpack(src)
    src[1] = 2.5
    assert view.tolist() == [0.0, 2.5, 0.0]
    w = torch.randn(4, 3, dtype=torch.float64)  # weights handed over without a copy
    lin = gnn.nn.Linear(3, 4).double()
    lin.weight.array[...] = gnn.from_dlpack(w).array
    np.testing.assert_array_equal(lin.weight.numpy(), w.numpy())


def test_gpu_tensors_exchange_on_their_device(device: str) -> None:
    if device == "cpu":
        pytest.skip("the GPU case")
    if os.environ.get("GNN_FAKE_CUDA") in ("1", "emulate"):
        pytest.skip("tests/fake_gpu does not model DLPack (real CuPy arrays have __dlpack__)")
    t = gnn.arange(4, device=device)
    assert t.__dlpack_device__()[0] == 2
    u = gnn.from_dlpack(t.array)
    assert u.device == t.device and u.tolist() == [0, 1, 2, 3]
