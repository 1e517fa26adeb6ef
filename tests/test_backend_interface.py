"""Both backends implement the interface of gnn/backend/base.py, with its argument names."""

from __future__ import annotations

import inspect

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
