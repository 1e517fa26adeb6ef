"""Both backends implement the interface of gnn/backend/base.py, with its argument names."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from gnn.backend import Backend, NumpyBackend, cuda_available, get_backend
from gnn.backend.base import KernelBackend


def members(interface: type) -> dict[str, object]:
    """The methods and attributes an interface declares itself (not those of its bases):
    Backend's public ones (not its private bookkeeping), all of KernelBackend's hook."""
    hook = interface is KernelBackend
    declared = {
        k: v
        for k, v in vars(interface).items()
        if inspect.isfunction(v) and not k.startswith("__") and (hook or not k.startswith("_"))
    }
    declared.update({k: None for k in vars(interface).get("__annotations__", {})})
    return declared


def check_implements(backend: object, interface: type) -> None:
    assert isinstance(backend, interface)
    for name, spec in members(interface).items():
        assert hasattr(backend, name), f"{type(backend).__name__} lacks {name}"
        if spec is None:
            continue
        want = list(inspect.signature(spec).parameters)[1:]  # without self
        got = list(inspect.signature(getattr(backend, name)).parameters)
        assert got == want, f"{type(backend).__name__}.{name}{got}: the interface says {want}"


def test_the_interface_declares_and_documents_what_gnn_asks_of_a_backend():
    declared = members(Backend)
    for name in ("xp", "name", "device", "asarray", "to_numpy", "rng", "index_add", "erf"):
        assert name in declared
    for name in ("check_ids", "check_errors", "constant", "scalar", "ones_vector", "randn"):
        assert name in declared
    assert {"_launch", "_sms", "_cuda_device", "_error_slots"} <= set(members(KernelBackend))
    for interface in (Backend, KernelBackend):
        functions = [f for f in members(interface).values() if f is not None]
        assert all(inspect.getdoc(f) for f in functions), interface
    # what the libraries do differently is abstract: a backend that forgets one cannot be made
    differ = {"to_numpy", "synchronize", "index_add", "erf", "permutation", "get_rng_state"}
    assert differ <= Backend.__abstractmethods__
    assert "_launch" in KernelBackend.__abstractmethods__


def test_numpy_backend_implements_the_interface():
    be = get_backend("cpu")
    assert isinstance(be, NumpyBackend) and be.name == "cpu"
    check_implements(be, Backend)
    be.check_errors()  # nothing is ever pending on the CPU


def test_the_check_catches_a_changed_signature():
    class Renamed(NumpyBackend):
        def asarray(self, values, dtype=None):  # type: ignore[override]
            return values

    with pytest.raises(AssertionError, match="asarray"):
        check_implements(Renamed(), Backend)


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA device")
def test_cuda_backend_implements_the_kernel_interface():
    be = get_backend("cuda")
    assert be.name == "cuda"
    check_implements(be, Backend)
    check_implements(be, KernelBackend)
    with be._cuda_device:
        assert be._sms() > 0


DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[
            pytest.mark.gpu,
            pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA device"),
        ],
    ),
]


@pytest.mark.parametrize("device", DEVICES)
def test_scalars_are_made_once_and_told_apart_by_sign_and_type(device: str) -> None:
    be = get_backend(device)
    f32 = np.float32
    assert be.scalar(2.0, f32) is be.scalar(2.0, f32)
    assert be.scalar(2.0, f32) is not be.scalar(2.0, np.float64)
    assert be.scalar(2, f32) is not be.scalar(2.0, f32)  # same value, but kept apart by type
    zero, negative_zero = be.to_numpy(be.scalar(0.0, f32)), be.to_numpy(be.scalar(-0.0, f32))
    assert not np.signbit(zero) and np.signbit(negative_zero)
    nan = be.scalar(float("nan"), f32)  # a NaN equals no other NaN, yet one array serves them all
    assert be.scalar(float("nan"), f32) is nan and np.isnan(be.to_numpy(nan))
    if device == "cpu":  # shared, so read-only where the library can say so
        with pytest.raises(ValueError, match="read-only"):
            be.scalar(2.0, f32)[...] = 3.0


@pytest.mark.parametrize("device", DEVICES)
def test_default_error_checks_raise_at_once_or_at_check_errors(device: str) -> None:
    be = get_backend(device)
    ids = be.asarray(np.array([0, 6, 7]), np.int64)
    with pytest.raises(IndexError, match="id 7 is out of range for an embedding of 7 rows"):
        be.check_ids(ids, 7, "lookup")
        be.check_errors()  # a GPU flags on the device: raised here
    assert be.value_range(ids) == (0, 7)
    be.check_ids(ids, 8, "lookup")
    be.check_errors()  # nothing pending
