"""Fused ops: one module per kernels/<name>.cu, the one place that op's math is written in Python.

A module here holds, for its op:
- typed specs: frozen dataclasses for the op's settings and for what a forward saves for its
  backward (no long positional argument lists, no tuples whose length picks a code path);
- the reference: `reference(xp, ...)`, the op's formula written once against the array module
  `xp` (NumPy or CuPy). The CPU backend runs it, the fake CuPy's kernel stand-ins run it
  (tests/fake_gpu/cupy/_kernels.py) and the tests compare kernels and unfused composites with it;
- the CUDA path: `cuda(be, ...)`, which checks that the kernel applies (dtype, layout, sizes),
  prepares contiguous operands and typed scalars, and queues kernels/<name>.cu through
  `be._launch`. It returns None where the kernel does not apply; the reference then runs.

`Fused(name, reference, cuda)` ties the two together; calling it with a backend picks the path.
Only this package and the backends know a kernel's argument list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gnn.backend.base import Backend

__all__ = ["Fused"]


@dataclass(frozen=True)
class Fused:
    """A fused op: its reference formula and, where written, its CUDA launcher."""

    name: str
    reference: Callable[..., Any]  # reference(xp, *args, **kwargs)
    cuda: Callable[..., Any] | None = None  # cuda(be, *args, **kwargs) -> result, or None

    def __call__(self, be: Backend, *args: Any, **kwargs: Any) -> Any:
        """Run on `be`: the kernel on a CUDA backend where it applies, else the reference."""
        if self.cuda is not None and be.name == "cuda":
            out = self.cuda(be, *args, **kwargs)
            if out is not None:
                return out
        return self.reference(be.xp, *args, **kwargs)
