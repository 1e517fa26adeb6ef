"""The backend interface: what gnn asks of the object that owns arrays on one device.

`Backend` is every backend's contract (NumpyBackend, and CupyBackend through it); `KernelBackend`
adds what the CUDA launchers of gnn/backend/fused use. Above gnn/backend/, code reaches a
backend through `Tensor.backend` or `get_backend(device)` and uses only what is declared here.
A new backend is one new file implementing `Backend`; fused ops need nothing of it (their
references run on its `xp`).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np

    from gnn.backend import Device

__all__ = ["Backend", "KernelBackend"]


class Backend(Protocol):
    """Arrays on one device, and the few operations that differ between array libraries.

    One object per device: copies of tensors and modules share it (copying returns the same
    object) and unpickling finds it again by its device.
    """

    name: str  # "cpu" or "cuda": fused ops launch their kernels on "cuda" only
    xp: Any  # the array module (numpy or cupy), the one array API for all other math
    device: Device

    # ---- arrays ----------------------------------------------------------------------------------

    def is_array(self, a: Any) -> bool:
        """True for an array of this backend's array module."""

    def asarray(self, data: Any, dtype: Any = None) -> Any:
        """An array on this device (no copy when `data` already is one of the right dtype)."""

    def to_numpy(self, a: Any) -> np.ndarray:
        """A host copy of `a` (a GPU first raises any error its kernels flagged)."""

    def from_dlpack(self, obj: Any) -> Any:
        """An array on this device sharing memory with a DLPack-capable object."""

    def synchronize(self) -> None:
        """Wait until the work queued on this device is done."""

    def ones(self, shape: tuple, dtype: Any) -> Any:
        """A new array of ones (backward's usual 0-d seed, cheaply)."""

    def ones_vector(self, n: int, dtype: Any) -> Any:
        """A cached vector of n ones (column sums as ones @ a); shared, so never written to."""

    # ---- constants and scalars: cached, shared, never written to -----------------------------

    def constant(self, values: tuple, dtype: Any) -> Any:
        """A 1-D array of `values` on this device, made once and cached."""

    def scalar(self, value: Any, dtype: Any) -> Any:
        """A 0-d array holding a Python number (an operand such as the 2 of x * 2)."""

    # ---- random numbers: one generator per device, re-seeded by gnn.manual_seed --------------

    def rng(self) -> Any:
        """This device's generator."""

    def manual_seed(self, seed: int) -> None:
        """Seed this device's generator alone."""

    def get_rng_state(self) -> dict:
        """The generator's state, for checkpoints ({} where the library hides it)."""

    def set_rng_state(self, state: dict) -> None:
        """Restore a state from get_rng_state."""

    def randn(self, shape: tuple, dtype: Any) -> Any:
        """Standard normal samples."""

    def rand(self, shape: tuple, dtype: Any) -> Any:
        """Uniform samples in [0, 1)."""

    def randint(self, low: int, high: int, shape: tuple, dtype: Any) -> Any:
        """Integers in [low, high)."""

    def permutation(self, n: int) -> Any:
        """A random permutation of 0..n-1."""

    # ---- math the array libraries do differently -------------------------------------------

    def index_add(self, target: Any, index: Any, values: Any) -> None:
        """target[index] += values, accumulating over repeated indices (in place)."""

    def erf(self, x: Any) -> Any:
        """The error function, elementwise."""

    # ---- error checks: the CPU raises at once; a GPU flags on the device and raises later ----

    def value_range(self, a: Any) -> tuple[int, int]:
        """(min, max) of a non-empty integer array, as Python ints."""

    def check_ids(self, ids: Any, num: int, op: str) -> None:
        """IndexError for an id outside 0..num-1: now, or at the next `check_errors()`."""

    def check_errors(self) -> None:
        """Wait for the device, then raise (and clear) an error flagged since the last check."""


class KernelBackend(Backend, Protocol):
    """A backend with gnn's CUDA kernels: the hook a fused op's `cuda(be, ...)` launches through.

    The underscored members are for gnn/backend/fused only; a launcher reaches the array
    library through `xp` alone.
    """

    _cuda_device: AbstractContextManager  # `with be._cuda_device:` makes this GPU current

    def _launch(self, module: str, name: str, blocks: int, threads: int, args: tuple) -> None:
        """Queue kernel `name` of kernels/<module>.cu with a 1-D grid on the current stream."""

    def _sms(self) -> int:
        """The number of streaming multiprocessors (to size grid-stride launches)."""

    def _dummy_f32(self) -> Any:
        """A float32 array standing in for an optional pointer the kernel will not read."""

    def _error_slots(self) -> Any:
        """The device's int64 error slots that kernels flag bad inputs in (see check_errors)."""
