"""Both backends implement the interface of gnn/backend/base.py, with its argument names."""

from __future__ import annotations

import inspect

import pytest

from gnn.backend import Backend, NumpyBackend, cuda_available, get_backend

# What the fused ops' CUDA launchers use of a CupyBackend (see its docstring).
KERNEL_HOOK = ("_cuda_device", "_launch", "_sms", "_dummy_f32", "_error_slots")


def members(cls: type) -> dict[str, object]:
    """The public methods and attributes a class declares itself (not those of its bases)."""
    declared = {
        k: v for k, v in vars(cls).items() if inspect.isfunction(v) and not k.startswith("_")
    }
    declared.update({k: None for k in vars(cls).get("__annotations__", {})})
    return declared


def check_implements(backend: object) -> None:
    for name, spec in members(Backend).items():
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
    undocumented = [k for k, f in declared.items() if f is not None and not inspect.getdoc(f)]
    assert not undocumented
    # what the libraries do differently is abstract: a backend that forgets one cannot be made
    differ = {"to_numpy", "synchronize", "index_add", "erf", "check_ids"}
    assert differ <= Backend.__abstractmethods__


def test_numpy_backend_implements_the_interface():
    be = get_backend("cpu")
    assert isinstance(be, NumpyBackend) and isinstance(be, Backend) and be.name == "cpu"
    check_implements(be)
    be.check_errors()  # nothing is ever pending on the CPU


def test_the_check_catches_a_changed_signature():
    class Renamed(NumpyBackend):
        def asarray(self, values, dtype=None):  # type: ignore[override]
            return values

    with pytest.raises(AssertionError, match="asarray"):
        check_implements(Renamed())


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA device")
def test_cuda_backend_implements_the_interface_and_the_kernel_hook():
    be = get_backend("cuda")
    assert be.name == "cuda" and isinstance(be, Backend)
    check_implements(be)
    for name in KERNEL_HOOK:
        assert hasattr(be, name), f"CupyBackend lacks {name}"
    with be._cuda_device:
        assert be._sms() > 0
