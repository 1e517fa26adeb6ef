"""CupyBackend: arrays on an NVIDIA GPU through CuPy, with gnn's own CUDA kernels from kernels/.

The only module in gnn that imports cupy, and only inside functions, so `import gnn` never does.
Kernel errors (bad class labels) and out-of-range embedding ids are flagged on the device and
raised by `check_errors()`.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from gnn.backend.base import Device, KernelBackend, _Cache, id_range_message
from gnn.backend.kernels import kernel_source


def device_count() -> int:
    """Number of CUDA devices CuPy sees (0 when CuPy or the driver is missing)."""
    try:
        import cupy

        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:
        return 0


# Device error slots: flag, first bad label, classes, ignore_index, bad rows seen by the forward,
# by the backward (see the .cu file)
ERROR_SLOTS = 6


class CupyBackend(KernelBackend):
    """Arrays in GPU memory, math by CuPy; a KernelBackend: the fused ops of gnn/backend/fused
    launch gnn's CUDA kernels through `_launch`."""

    name = "cuda"

    def __init__(self, index: int = 0) -> None:
        from gnn.backend import CUDA_INSTALL_HINT

        try:
            import cupy
        except Exception as exc:  # ImportError, or a CuPy that cannot find its CUDA libraries
            raise RuntimeError(f"cannot import CuPy ({exc}); {CUDA_INSTALL_HINT}") from exc
        count = device_count()
        if count == 0:
            raise RuntimeError(
                "device 'cuda' was requested but no CUDA GPU is visible "
                "(check nvidia-smi and the driver); " + CUDA_INSTALL_HINT
            )
        if index >= count:
            raise RuntimeError(f"device 'cuda:{index}' does not exist: {count} GPU(s) visible")
        super().__init__(cupy, Device("cuda", index))
        self._cuda_device = cupy.cuda.Device(index)
        self._modules: dict[str, Any] = {}  # kernels/<module>.cu compiled, by module
        self._kernels = _Cache(self._kernel)  # by (module, name)
        self._sm_count = int(self._cuda_device.attributes["MultiProcessorCount"])
        self._errors: Any = None  # int64[ERROR_SLOTS] on this GPU, made on first use
        self._errors_pending = False  # a flagging kernel ran since the last check_errors()
        self._id_checks: dict[tuple, Any] = {}  # see check_ids()

    # ---- arrays --------------------------------------------------------------------------------

    def asarray(self, data: Any, dtype: Any = None) -> Any:
        """An array on this GPU (no copy when `data` already is one of the right dtype)."""
        with self._cuda_device:
            return self.xp.asarray(data, dtype=dtype)

    def to_numpy(self, a: Any) -> np.ndarray:
        """Copy to host; first raise an error a kernel flagged since the last check (lazily)."""
        if self._errors_pending:
            self.check_errors()
        return self.xp.asnumpy(a)

    def synchronize(self) -> None:
        """Wait until the work queued on this GPU is done."""
        self._cuda_device.synchronize()

    def from_dlpack(self, obj: Any) -> Any:
        """An array on this GPU sharing memory with a DLPack-capable object."""
        with self._cuda_device:
            return self.xp.from_dlpack(obj)

    # ---- random numbers ------------------------------------------------------------------------

    def _new_generator(self, seed: int | None) -> Any:
        with self._cuda_device:
            return self.xp.random.default_rng(seed)

    def get_rng_state(self) -> dict:
        """{}: CuPy's generators do not expose their state; checkpoints keep the seed generation
        only."""
        return {}

    def set_rng_state(self, state: dict) -> None:
        """Nothing to restore: get_rng_state has nothing to give."""

    def value_range(self, a: Any) -> tuple[int, int]:
        # one device-to-host copy (one wait for the GPU) for both numbers, not two
        lo, hi = self.xp.stack((a.min(), a.max())).tolist()
        return int(lo), int(hi)

    def permutation(self, n: int) -> Any:
        # CuPy's Generator has no permutation(): the order that sorts n random keys is one.
        return self.xp.argsort(self.rng().random(n))

    # ---- helpers -------------------------------------------------------------------------------

    def index_add(self, target: Any, index: Any, values: Any) -> None:
        import cupyx

        cupyx.scatter_add(target, index, values)

    def erf(self, x: Any) -> Any:
        import cupyx.scipy.special

        return cupyx.scipy.special.erf(x)

    # ---- kernels -------------------------------------------------------------------------------

    def _kernel(self, module: str, name: str) -> Any:
        """Kernel `name` of kernels/<module>.cu, the module compiled once per device (a RawModule);
        `_launch` finds it in `_kernels`, which calls this once per kernel."""
        if module not in self._modules:
            with self._cuda_device:
                code = kernel_source(module)
                self._modules[module] = self.xp.RawModule(code=code, options=("--std=c++17",))
        return self._modules[module].get_function(name)

    def _launch(self, module: str, name: str, blocks: int, threads: int, args: tuple) -> None:
        """Queue kernels/<module>.cu:<name> on the current stream (GNN_DEBUG_SYNC=1: and wait)."""
        self._kernels[module, name]((blocks,), (threads,), args)
        if os.environ.get("GNN_DEBUG_SYNC") == "1":
            self.check_errors()

    def _sms(self) -> int:
        return self._sm_count

    def _error_slots(self) -> Any:
        if self._errors is None:
            self._errors = self.xp.zeros((ERROR_SLOTS,), dtype=np.int64)
        self._errors_pending = True
        return self._errors

    def check_ids(self, ids: Any, num: int, op: str) -> None:
        """Flag an id outside 0..num-1 on the device, without waiting for it; `check_errors()`
        raises IndexError later (CuPy's lookup wraps such an id around meanwhile)."""
        if not ids.size:
            return
        # Seen as unsigned, a negative id is huge: one max checks both ends of the range.
        top = ids.view(f"u{ids.dtype.itemsize}").max() if ids.dtype.kind == "i" else ids.max()
        seen = self._id_checks.setdefault((op, num, ids.dtype), top)
        if seen is not top:  # the largest since the last check, kept on the device
            self.xp.maximum(seen, top, out=seen)
        self._errors_pending = True
        if os.environ.get("GNN_DEBUG_SYNC") == "1":
            self.check_errors()

    def check_errors(self) -> None:
        """Wait for this GPU, then raise (and clear) an error flagged since the last check.

        Kernels cannot raise: a bad class label sets a flag on the device instead, and an
        embedding's ids are checked there (`check_ids`). This is called after every launch when
        the environment has GNN_DEBUG_SYNC=1, and lazily otherwise (by `to_numpy`, hence
        `Tensor.numpy()` / `.item()`, after a kernel or check that can flag has run).
        """
        self.synchronize()  # also surfaces asynchronous CUDA errors of earlier launches
        self._errors_pending = False
        errors = [e for e in (self._id_error(), self._label_error()) if e]  # both clear flags
        if errors:
            raise errors[0]

    def _id_error(self) -> IndexError | None:
        """The first out-of-range id flagged by check_ids since the last check (all cleared)."""
        if not self._id_checks:
            return None
        checks, self._id_checks = self._id_checks, {}
        with self._cuda_device:
            # one copy to the host for all of them (same-size unsigned, or as uint64)
            tops = self.xp.asnumpy(self.xp.stack([t.astype(np.uint64) for t in checks.values()]))
        for (op, num, dtype), top in zip(checks, tops.tolist()):
            if top >= num:
                bad = int(np.array(top, dtype=f"u{dtype.itemsize}").view(dtype))  # signed again
                return IndexError(
                    f"{id_range_message(op, bad, num)}; found on {self.device} after the lookup "
                    "ran (CuPy read a wrapped-around row for it)"
                )
        return None

    def _label_error(self) -> IndexError | None:
        """The bad class label the softmax-CE kernels flagged since the last check (cleared)."""
        if self._errors is None:
            return None
        with self._cuda_device:
            slots = self.xp.asnumpy(self._errors)
            if slots[0] == 0:
                return None
            self._errors.fill(0)
        label, classes, ignore_index, forward, backward = (int(v) for v in slots[1:])
        # the forward's count, or the backward's when the forward's was raised by an earlier check
        return IndexError(
            f"cross_entropy: target {label} is out of bounds for {classes} classes (valid: "
            f"0..{classes - 1}, or ignore_index={ignore_index}); {forward or backward} bad label(s)"
            f" found by the CUDA kernel on {self.device} (their loss and gradient rows are NaN)"
        )
