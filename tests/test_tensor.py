"""Tensors, creation functions, dtypes, devices and settings (tensor.py, creation.py, dtypes.py,
config.py, backend/__init__.py). Expected values come from NumPy or are written out by hand.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

import gnn
import gnn.functional as F
from gnn import backend, config
from gnn.backend import Device, NumpyBackend
from gnn.tensor import Tensor

HAS_CUPY = importlib.util.find_spec("cupy") is not None


@pytest.fixture(autouse=True)
def _restore_settings() -> Any:
    """A failing test must not leave another default dtype or device to the tests after it."""
    dtype, device = config._default_dtype, backend.base._default_device
    yield
    config._default_dtype, backend.base._default_device = dtype, device


@pytest.fixture
def fresh_default_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget the default device, so GNN_DEVICE is read again; restored after the test."""
    monkeypatch.setattr(backend.base, "_default_device", None)
    monkeypatch.delenv("GNN_DEVICE", raising=False)


@pytest.fixture
def no_cupy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make gnn see a machine without CuPy, whether or not this one has it."""
    real = importlib.util.find_spec
    monkeypatch.setattr(backend, "_cuda_backends", {})
    monkeypatch.setattr(
        backend.importlib.util,
        "find_spec",
        lambda name, *a: None if name.split(".")[0] == "cupy" else real(name, *a),
    )


# ---- creation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: gnn.tensor([[1.0, 2.0], [3.0, 4.0]]), np.array([[1, 2], [3, 4]], np.float32)),
        (lambda: gnn.tensor([1, 2, 3]), np.array([1, 2, 3], np.int64)),
        (lambda: gnn.tensor([True, False]), np.array([True, False])),
        (lambda: gnn.tensor([1, 2.5]), np.array([1, 2.5], np.float32)),
        (lambda: gnn.tensor(3.0), np.array(3.0, np.float32)),
        (lambda: gnn.tensor(7), np.array(7, np.int64)),
        (lambda: gnn.tensor([]), np.zeros((0,), np.float32)),
        (lambda: gnn.tensor(np.arange(3.0)), np.arange(3.0)),  # NumPy arrays keep their dtype
        (lambda: gnn.tensor(np.arange(3, dtype=np.int32)), np.arange(3, dtype=np.int32)),
        (lambda: gnn.tensor([1, 2], dtype=gnn.float16), np.array([1, 2], np.float16)),
        (lambda: gnn.zeros(2, 3), np.zeros((2, 3), np.float32)),
        (lambda: gnn.zeros((2, 3), dtype="int32"), np.zeros((2, 3), np.int32)),
        (lambda: gnn.zeros(), np.zeros((), np.float32)),
        (lambda: gnn.zeros(0, 4), np.zeros((0, 4), np.float32)),
        (lambda: gnn.ones([4]), np.ones(4, np.float32)),
        (lambda: gnn.ones(2, 1, dtype=gnn.float64), np.ones((2, 1))),
        (lambda: gnn.full((2, 2), 1.5), np.full((2, 2), 1.5, np.float32)),
        (lambda: gnn.full((3,), 7), np.full(3, 7, np.int64)),
        (lambda: gnn.full(2, True), np.full(2, True)),
        (lambda: gnn.full((2,), 2, dtype="float64"), np.full(2, 2.0)),
        (lambda: gnn.arange(5), np.arange(5, dtype=np.int64)),
        (lambda: gnn.arange(2, 8, 2), np.array([2, 4, 6], np.int64)),
        (lambda: gnn.arange(0, 1, 0.25), np.array([0, 0.25, 0.5, 0.75], np.float32)),
        (lambda: gnn.arange(3, dtype="float64"), np.arange(3.0)),
        (lambda: gnn.eye(3), np.eye(3, dtype=np.float32)),
        (lambda: gnn.eye(2, 3, dtype="int64"), np.eye(2, 3, dtype=np.int64)),
        (lambda: gnn.linspace(0, 1, 5), np.array([0, 0.25, 0.5, 0.75, 1], np.float32)),
        (lambda: gnn.linspace(-1, 1, 3, dtype="float64"), np.array([-1.0, 0.0, 1.0])),
        (lambda: gnn.zeros_like(gnn.tensor([1, 2])), np.zeros(2, np.int64)),
        (lambda: gnn.ones_like(gnn.zeros(2, 2)), np.ones((2, 2), np.float32)),
        (lambda: gnn.ones_like(gnn.zeros(2), dtype="float64"), np.ones(2)),
    ],
)
def test_creation_matches_numpy(make: Any, expected: np.ndarray, device: str) -> None:
    with gnn.default_device(device):
        t = make()
    assert isinstance(t, Tensor) and t.device == device
    assert t.shape == expected.shape
    assert t.dtype == expected.dtype
    np.testing.assert_array_equal(t.numpy(), expected)
    assert not t.requires_grad and t.grad is None


@pytest.mark.parametrize(
    ("make", "shape", "dtype"),
    [
        (lambda: gnn.randn(2, 3), (2, 3), np.float32),
        (lambda: gnn.randn((4,), dtype="float64"), (4,), np.float64),
        (lambda: gnn.rand(3, 2, dtype=gnn.float16), (3, 2), np.float16),
        (lambda: gnn.rand(5), (5,), np.float32),
        (lambda: gnn.randint(0, 10, (3, 4)), (3, 4), np.int64),
        (lambda: gnn.randint(10, (6,)), (6,), np.int64),  # randint(high, size), as PyTorch
        (lambda: gnn.randint(-3, 3, 8, dtype="int32"), (8,), np.int32),
    ],
)
def test_random_creation_shapes_and_dtypes(make: Any, shape: tuple, dtype: Any) -> None:
    gnn.manual_seed(0)
    t = make()
    assert t.shape == shape and t.dtype == dtype


def test_random_values_lie_in_their_ranges() -> None:
    gnn.manual_seed(1)
    u = gnn.rand(10_000).numpy()
    assert u.min() >= 0.0 and u.max() < 1.0 and abs(u.mean() - 0.5) < 0.02
    n = gnn.randn(10_000, dtype="float64").numpy()
    assert abs(n.mean()) < 0.05 and abs(n.std() - 1.0) < 0.05
    r = gnn.randint(-3, 3, (10_000,)).numpy()
    assert set(np.unique(r).tolist()) == {-3, -2, -1, 0, 1, 2}


def test_tensor_copies_numpy_input_and_from_numpy_shares() -> None:
    a = np.zeros(3, np.float32)
    t, s = gnn.tensor(a), gnn.from_numpy(a)
    a[0] = 1.0
    assert t.numpy()[0] == 0.0 and s.numpy()[0] == 1.0


def test_tensor_of_a_tensor_is_a_copy() -> None:
    src = gnn.tensor([1.0, 2.0])
    t = gnn.tensor(src)
    t.array[0] = 9.0
    assert src.numpy()[0] == 1.0


def test_array_is_the_backend_array_itself(device: str) -> None:
    t = gnn.zeros(3, device=device)
    assert t.array is t.array and t.array.shape == (3,)
    t.array[1] = 4.0  # no copy: writes reach the tensor
    assert t.tolist() == [0.0, 4.0, 0.0]


# ---- .data: a detached tensor on the same storage, as in PyTorch --------------------------------


def test_data_is_a_detached_tensor_sharing_storage(device: str) -> None:
    p = gnn.nn.Parameter(gnn.tensor([1.0, 2.0], device=device))
    y = (p * 3).sum()
    for t in (p, y):
        d = t.data
        assert type(d) is Tensor and d.array is t.array and d.device == t.device
        assert not d.requires_grad and d.is_leaf and d.grad is None
    assert p.requires_grad and p.is_leaf and y.requires_grad  # the originals are unchanged


def test_in_place_changes_through_data_reach_a_parameter(device: str) -> None:
    p = gnn.nn.Parameter(gnn.tensor([1.0, 2.0, 3.0], dtype="float64", device=device))
    with pytest.raises(RuntimeError, match="requires grad"):
        p.add_(1.0)  # on the parameter itself autograd refuses, as PyTorch does
    p.grad = gnn.tensor([10.0, 20.0, 30.0], dtype="float64", device=device)
    p.data.add_(p.grad, alpha=-0.1)
    np.testing.assert_allclose(p.numpy(), [0.0, 0.0, 0.0], atol=1e-15)
    p.data.copy_(gnn.tensor([4.0, 5.0, 6.0]))  # any dtype and device
    p.data.mul_(2).sub_(gnn.ones(3, dtype="float64", device=device), alpha=3)
    assert p.tolist() == [5.0, 7.0, 9.0]
    p.data[0] = -1.0
    p.data.clamp_(max=8.0)
    assert p.tolist() == [-1.0, 7.0, 8.0]
    p.data.fill_(2.5)
    assert p.tolist() == [2.5, 2.5, 2.5]
    p.data.zero_()
    assert p.tolist() == [0.0, 0.0, 0.0] and p.requires_grad


def test_random_fills_through_data(device: str) -> None:
    lin = gnn.nn.Linear(40, 30).to(device)
    gnn.nn.init.uniform_(lin.weight.data, -0.1, 0.1)
    w = lin.weight.numpy()
    assert np.abs(w).max() <= 0.1 and w.std() > 0.04  # filled, and over the whole range
    gnn.nn.init.normal_(lin.weight.data, 5.0, 0.5)
    assert abs(lin.weight.numpy().mean() - 5.0) < 0.1
    lin.bias.data.uniform_(2.0, 3.0)
    assert 2.0 <= lin.bias.numpy().min() and lin.bias.numpy().max() < 3.0
    lin.bias.data.normal_(-4.0, 0.01)
    assert abs(lin.bias.numpy().mean() + 4.0) < 0.05
    assert lin.weight.requires_grad and lin.weight.is_leaf


def test_assigning_data_replaces_the_storage(device: str) -> None:
    p = gnn.nn.Parameter(gnn.zeros(2, 3, device=device))
    new = gnn.arange(4, dtype="float64", device=device)
    p.data = new  # shape and dtype may change, as in PyTorch
    assert p.shape == (4,) and p.dtype == np.float64 and p.array is new.array
    assert p.requires_grad and isinstance(p, gnn.nn.Parameter)
    (p * p).sum().backward()
    assert p.grad.tolist() == [0.0, 2.0, 4.0, 6.0]
    p.data = gnn.ones(2)  # to the default device
    assert p.device == gnn.ones(2).device and p.tolist() == [1.0, 1.0]
    with pytest.raises(TypeError, match="expected a Tensor, got ndarray"):
        p.data = np.ones(2)


def test_creation_requires_grad() -> None:
    for t in (
        gnn.tensor([1.0], requires_grad=True),
        gnn.zeros(2, requires_grad=True),
        gnn.randn(2, requires_grad=True),
        gnn.ones_like(gnn.zeros(2), requires_grad=True),
    ):
        assert t.requires_grad and t.is_leaf


@pytest.mark.parametrize(
    ("make", "error", "words"),
    [
        (lambda: gnn.zeros(-1, 2), ValueError, "negative dimension"),
        (lambda: gnn.tensor([[1, 2], [3]]), ValueError, "tensor()"),
        (lambda: gnn.tensor("abc"), TypeError, "tensor()"),
        (lambda: gnn.randn(2, dtype="int64"), TypeError, "randn: dtype must be floating"),
        (lambda: gnn.rand(2, dtype=gnn.bool), TypeError, "rand: dtype must be floating"),
        (lambda: gnn.randint(5, 5, (2,)), ValueError, "randint: low (5) must be less"),
        (lambda: gnn.randint(0, 5, (2,), dtype="float32"), TypeError, "randint: dtype"),
        (lambda: gnn.randint(5), TypeError, "randint"),
    ],
)
def test_creation_errors_are_clear(make: Any, error: type, words: str) -> None:
    with pytest.raises(error) as info:
        make()
    assert words in str(info.value)


# ---- default dtype -----------------------------------------------------------------------------


def test_default_dtype_is_float32() -> None:
    assert gnn.get_default_dtype() == gnn.float32 == np.float32
    assert gnn.tensor([0.5]).dtype == np.float32
    assert gnn.randn(2).dtype == np.float32


def test_set_default_dtype_and_context_manager() -> None:
    try:
        gnn.set_default_dtype(gnn.float64)
        for t in (gnn.tensor([1.5]), gnn.zeros(2), gnn.ones(1), gnn.randn(2), gnn.arange(0.0, 1.0)):
            assert t.dtype == np.float64, t
        assert gnn.tensor([1]).dtype == np.int64  # integers are not affected
    finally:
        gnn.set_default_dtype(gnn.float32)
    with gnn.default_dtype("float16"):
        assert gnn.full((1,), 0.5).dtype == np.float16
        assert gnn.eye(2).dtype == np.float16
    assert gnn.zeros(1).dtype == np.float32
    with pytest.raises(ZeroDivisionError), gnn.default_dtype(np.float64):
        raise ZeroDivisionError
    assert gnn.get_default_dtype() == np.float32


@pytest.mark.parametrize("bad", ["int32", gnn.bool, np.int64, None])
def test_default_dtype_must_be_floating(bad: Any) -> None:
    with pytest.raises(TypeError):
        gnn.set_default_dtype(bad)
    assert gnn.get_default_dtype() == np.float32


# ---- dtype parsing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (gnn.float16, np.float16),
        (gnn.float32, np.float32),
        (gnn.float64, np.float64),
        (gnn.int32, np.int32),
        (gnn.int64, np.int64),
        (gnn.bool, np.bool_),
        (gnn.half, np.float16),
        (gnn.double, np.float64),
        (gnn.long, np.int64),
        (np.float32, np.float32),
        (np.dtype("int32"), np.int32),
        ("float16", np.float16),
        ("float32", np.float32),
        ("float64", np.float64),
        ("float", np.float32),  # torch.float
        ("double", np.float64),
        ("half", np.float16),
        ("int", np.int32),  # torch.int
        ("long", np.int64),
        ("bool", np.bool_),
        (float, np.float32),
        (int, np.int64),
        (bool, np.bool_),
        ("uint8", np.uint8),  # other NumPy numeric dtypes are accepted as storage
    ],
)
def test_dtype_parsing(spec: Any, expected: Any) -> None:
    t = gnn.tensor([1, 0], dtype=spec)
    assert t.dtype == np.dtype(expected)
    assert gnn.zeros(1, dtype=spec).dtype == np.dtype(expected)


@pytest.mark.parametrize("bad", ["float8", "tensor", np.complex64, "complex128", object])
def test_unknown_dtype_is_a_clear_error(bad: Any) -> None:
    with pytest.raises(TypeError, match="dtype"):
        gnn.zeros(2, dtype=bad)


def test_unknown_dtype_error_lists_the_known_names() -> None:
    with pytest.raises(TypeError) as info:
        gnn.tensor([1.0], dtype="float8")
    assert "'float8'" in str(info.value) and "float32" in str(info.value)


# ---- random seed -------------------------------------------------------------------------------


def test_manual_seed_makes_random_tensors_reproducible(device: str) -> None:
    def draw() -> list[np.ndarray]:
        with gnn.default_device(device):
            return [gnn.randn(3, 4).numpy(), gnn.rand(5).numpy(), gnn.randint(0, 100, 6).numpy()]

    gnn.manual_seed(123)
    first = draw()
    gnn.manual_seed(123)
    second = draw()
    gnn.manual_seed(124)
    other = draw()
    for a, b, c in zip(first, second, other):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)
    assert not np.array_equal(first[0], draw()[0])  # the stream moves on


# ---- conversion and attributes -----------------------------------------------------------------


def test_attributes() -> None:
    t = gnn.tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    assert t.shape == (2, 3) and isinstance(t.shape, tuple)
    assert t.ndim == 2 and t.dim() == 2 and t.numel() == 6 and len(t) == 2
    assert t.size() == (2, 3) and t.size(1) == 3
    assert t.dtype == gnn.float32
    assert t.device == "cpu" and t.device == Device("cpu") and str(t.device) == "cpu"
    assert isinstance(t.device, Device) and t.device.type == "cpu"


def test_numpy_item_tolist() -> None:
    t = gnn.tensor([[1.5, 2.0]])
    arr = t.numpy()
    assert isinstance(arr, np.ndarray) and arr.dtype == np.float32
    np.testing.assert_array_equal(arr, [[1.5, 2.0]])
    assert t.tolist() == [[1.5, 2.0]]
    f = gnn.tensor([[2.5]]).item()
    i = gnn.tensor(3).item()
    b = gnn.tensor(True).item()
    assert (f, i, b) == (2.5, 3, True)
    assert type(f) is float and type(i) is int and type(b) is bool
    assert float(gnn.tensor(1.25)) == 1.25 and int(gnn.tensor([4])) == 4


def test_iterating_gives_the_rows_and_a_0d_tensor_refuses_at_once() -> None:
    rows = list(gnn.tensor([[1, 2], [3, 4]]))
    assert [r.tolist() for r in rows] == [[1, 2], [3, 4]]
    with pytest.raises(TypeError, match="0-d"):
        iter(gnn.tensor(1.0))  # as PyTorch: at iter(), not at the first next()


def test_item_on_many_elements_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"item\(\).*3 elements"):
        gnn.ones(3).item()
    with pytest.raises(ValueError, match="0 elements"):
        gnn.zeros(0).item()
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(gnn.ones(2))


def test_repr() -> None:
    assert repr(gnn.tensor([1.0, 2.5])) == "tensor([1. , 2.5])"
    assert repr(gnn.tensor(3.0)) == "tensor(3.)"
    assert repr(gnn.tensor([1, 2])) == "tensor([1, 2])"
    assert repr(gnn.tensor([True])) == "tensor([ True])"
    assert repr(gnn.tensor([1.0], dtype="float64")) == "tensor([1.], dtype=float64)"
    assert repr(gnn.tensor([1], dtype="int32")) == "tensor([1], dtype=int32)"
    x = gnn.tensor([1.0, 2.0], requires_grad=True)
    assert repr(x) == "tensor([1., 2.], requires_grad=True)"
    assert repr(x * 2.0) == "tensor([2., 4.], grad_fn=Mul)"
    big = repr(gnn.zeros(2000))
    assert "..." in big and len(big) < 200


# ---- devices -----------------------------------------------------------------------------------


def test_cuda_available_is_false_without_cupy(no_cupy: None) -> None:
    assert gnn.cuda_available() is False


@pytest.mark.skipif(HAS_CUPY, reason="CuPy is installed here")
def test_cuda_available_is_false_on_this_machine() -> None:
    assert gnn.cuda_available() is False


@pytest.mark.parametrize(
    "ask",
    [
        lambda: gnn.zeros(2, device="cuda"),
        lambda: gnn.tensor([1.0], device="cuda:0"),
        lambda: gnn.ones(2).to("cuda"),
        lambda: gnn.ones(2).cuda(),
        lambda: gnn.set_default_device("cuda"),
    ],
)
def test_cuda_without_cupy_says_how_to_install_it(no_cupy: None, ask: Any) -> None:
    with pytest.raises(RuntimeError) as info:
        ask()
    message = str(info.value)
    assert "CuPy" in message and "pip install 'gnn[cuda12]'" in message, message
    assert gnn.get_default_device() == "cpu"


@pytest.mark.parametrize("bad", ["tpu", "cuda:x", "cpu:0:1", 3])
def test_unknown_device_is_a_clear_error(bad: Any) -> None:
    with pytest.raises(ValueError, match=r"unknown device.*'cpu', 'cuda' or 'cuda:N'"):
        gnn.zeros(2, device=bad)
    with pytest.raises(ValueError, match="unknown device"):
        gnn.set_default_device(bad)
    assert gnn.get_default_device() == "cpu"


def test_to_with_neither_device_nor_dtype_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="neither a device"):
        gnn.ones(2).to("tpu")


def test_set_default_device_and_context_manager(fresh_default_device: None) -> None:
    gnn.set_default_device(" CPU ")
    assert gnn.get_default_device() == "cpu"
    assert gnn.zeros(1).device == "cpu"
    with gnn.default_device("cpu"):
        assert gnn.get_default_device() == "cpu"
    assert gnn.get_default_device() == "cpu"


def test_gnn_device_environment_variable(
    fresh_default_device: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GNN_DEVICE", "cpu")
    assert gnn.get_default_device() == "cpu" and gnn.ones(1).device == "cpu"
    monkeypatch.setattr(backend.base, "_default_device", None)
    monkeypatch.setenv("GNN_DEVICE", "bogus")
    with pytest.raises(ValueError, match=r"'bogus'.*GNN_DEVICE"):
        gnn.zeros(1)
    gnn.set_default_device("cpu")  # the setter wins over the environment
    assert gnn.zeros(1).device == "cpu"


def test_gnn_device_cuda_without_cupy_is_a_clear_error(
    fresh_default_device: None, no_cupy: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GNN_DEVICE", "cuda")
    with pytest.raises(RuntimeError, match=r"gnn\[cuda12\]"):
        gnn.zeros(1)


def test_default_device_none_and_a_block_go_back_to_the_environment_default(
    fresh_default_device: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GNN_DEVICE", "bogus")  # read (and refused) only when a tensor is made
    with gnn.default_device("cpu"):
        assert gnn.zeros(1).device == "cpu"
    with pytest.raises(ValueError, match="GNN_DEVICE"):
        gnn.zeros(1)
    gnn.set_default_device("cpu")
    monkeypatch.setenv("GNN_DEVICE", "cpu")
    gnn.set_default_device(None)  # as torch.set_default_device(None): the default again
    assert backend.base._default_device is None and gnn.get_default_device() == "cpu"


def test_to_cpu_and_dtype_conversions() -> None:
    t = gnn.tensor([1.5, -2.0])
    assert t.to("cpu") is t and t.cpu() is t and t.to(Device("cpu")) is t
    d = t.to(gnn.float64)
    assert d.dtype == np.float64 and t.dtype == np.float32
    np.testing.assert_array_equal(d.numpy(), [1.5, -2.0])
    assert t.to("float16").dtype == np.float16
    assert t.to("cpu", "float64").dtype == np.float64
    assert t.long().tolist() == [1, -2] and t.long().dtype == np.int64
    assert t.to(gnn.tensor([1], dtype="int32")).dtype == np.int32


class _FakeBackend(NumpyBackend):
    """NumPy arrays that claim to live on another device: enough to drive gnn's device checks
    (Function.apply compares backends, Tensor.to moves between them) on a machine with no GPU."""

    name = "fake"

    def __init__(self) -> None:
        super().__init__()
        self.device = Device("cuda", 7)


def test_mixing_devices_in_one_op_is_a_clear_error() -> None:
    fake = _FakeBackend()
    there = Tensor._make(np.ones((2, 2), np.float32), fake, False)
    here = gnn.ones(2, 2)
    for op, name in [
        (lambda: here + there, "add"),
        (lambda: there * here, "mul"),
        (lambda: here @ there, "matmul"),
    ]:
        with pytest.raises(RuntimeError) as info:
            op()
        message = str(info.value)
        assert message.startswith(name) and "different devices" in message, message
        assert "cpu" in message and "cuda:7" in message and ".to(" in message


def test_to_moves_between_devices_and_gradients_flow_back() -> None:
    fake = _FakeBackend()
    x = Tensor._make(np.array([1.0, 2.0]), fake, False).requires_grad_()
    assert repr(x).endswith("device='cuda:7', dtype=float64, requires_grad=True)")
    y = x.to("cpu")
    assert y.device == "cpu" and y._be is backend.get_backend("cpu")
    np.testing.assert_array_equal(y.numpy(), [1.0, 2.0])
    (y * y).sum().backward()
    assert x.grad.device == Device("cuda", 7)
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0])


# ---- error messages of ops ---------------------------------------------------------------------


def test_matmul_shape_mismatch_names_op_and_shapes() -> None:
    with pytest.raises(ValueError) as info:
        gnn.ones(3, 4) @ gnn.ones(5, 2)
    assert str(info.value) == "matmul: (3, 4) @ (5, 2): inner dims 4 != 5"
    with pytest.raises(ValueError, match=r"matmul: \(3,\) @ \(4,\): inner dims 3 != 4"):
        gnn.ones(3) @ gnn.ones(4)
    with pytest.raises(ValueError, match=r"matmul: \(2, 3, 4\) @ \(5, 4, 2\).*\(2,\).*\(5,\)"):
        gnn.ones(2, 3, 4) @ gnn.ones(5, 4, 2)


@pytest.mark.parametrize(
    ("op", "name"),
    [
        (lambda a, b: a + b, "add"),
        (lambda a, b: a - b, "sub"),
        (lambda a, b: a * b, "mul"),
        (lambda a, b: a / b, "div"),
    ],
)
def test_broadcast_mismatch_names_op_and_shapes(op: Any, name: str) -> None:
    with pytest.raises(ValueError) as info:
        op(gnn.ones(3, 4), gnn.ones(5, 2))
    assert str(info.value) == f"{name}: shapes (3, 4) and (5, 2) cannot be broadcast together"


# ---- import gnn --------------------------------------------------------------------------------


def test_import_gnn_does_not_import_cupy_and_reads_gnn_device() -> None:
    code = (
        "import sys, gnn\n"
        "t = gnn.ones(2, 2) @ gnn.randn(2, 3, requires_grad=True)\n"
        "t.sum().backward()\n"
        "print(gnn.get_default_device(), t.device)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('cupy', 'cupyx')))\n"
    )
    env = {**os.environ, "GNN_DEVICE": "cpu"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["cpu cpu", "[]"]


@pytest.mark.parametrize(
    ("left", "right", "op", "expected"),
    [
        ("float32", "int64", "add", "float32"),  # NumPy alone would give float64
        ("int32", "float32", "mul", "float32"),
        ("float16", "int64", "sub", "float16"),
        ("float32", "bool", "mul", "float32"),
        ("int64", "int64", "div", "float32"),  # true division into the default float dtype
        ("int64", "int32", "add", "int64"),
        ("float16", "float32", "add", "float32"),
    ],
)
def test_type_promotion_follows_pytorch(left, right, op, expected):
    a = gnn.tensor(np.array([1, 2, 3]).astype(left))
    b = gnn.tensor(np.array([2, 1, 4]).astype(right))
    out = getattr(F, op)(a, b)
    assert out.dtype == np.dtype(expected)
    ref = {"add": np.add, "mul": np.multiply, "sub": np.subtract, "div": np.true_divide}[op]
    np.testing.assert_allclose(out.numpy(), ref(a.numpy(), b.numpy()).astype(expected))


def test_backend_constant_is_made_once_and_read_only(device: str) -> None:
    be = gnn.backend.get_backend(device)
    a = be.constant((0, 1, 3, 2), np.int64)
    assert be.constant((0, 1, 3, 2), np.int64) is a and be.is_array(a)
    np.testing.assert_array_equal(be.to_numpy(a), [0, 1, 3, 2])
    half = be.constant((0.5, 1.0), np.float32)
    assert half.dtype == np.float32 and half is not be.constant((0.5, 1.0), np.float64)
    if device == "cpu":
        with pytest.raises(ValueError):
            a[0] = 5
