"""Both backends implement the interface of gnn/backend/base.py, with its argument names."""

from __future__ import annotations

import inspect

import pytest

from gnn.backend import NumpyBackend, cuda_available, get_backend
from gnn.backend.base import Backend, KernelBackend


def members(protocol: type) -> dict[str, object]:
    """The methods and attributes a protocol declares itself (not those of its bases)."""
    declared = {
        k: v for k, v in vars(protocol).items() if inspect.isfunction(v) and k != "__init__"
    }
    declared.update({k: None for k in vars(protocol).get("__annotations__", {})})
    return declared


def check_implements(backend: object, protocol: type) -> None:
    for name, spec in members(protocol).items():
        assert hasattr(backend, name), f"{type(backend).__name__} lacks {name}"
        if spec is None:
            continue
        want = list(inspect.signature(spec).parameters)[1:]  # without self
        got = list(inspect.signature(getattr(backend, name)).parameters)
        assert got == want, f"{type(backend).__name__}.{name}{got}: the interface says {want}"


def test_the_interface_declares_what_gnn_asks_of_a_backend():
    declared = members(Backend)
    for name in ("xp", "name", "device", "asarray", "to_numpy", "rng", "index_add", "erf"):
        assert name in declared
    assert {"_launch", "_sms", "_cuda_device"} <= set(members(KernelBackend))


def test_numpy_backend_implements_the_interface():
    be = get_backend("cpu")
    assert isinstance(be, NumpyBackend) and be.name == "cpu"
    check_implements(be, Backend)
    be.check_errors()  # nothing is ever pending on the CPU


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA device")
def test_cuda_backend_implements_the_kernel_interface():
    be = get_backend("cuda")
    assert be.name == "cuda"
    check_implements(be, Backend)
    check_implements(be, KernelBackend)
    with be._cuda_device:
        assert be._sms() > 0
