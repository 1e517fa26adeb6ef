"""Testing helpers: a numerical gradient checker (float64 central differences)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from gnn.tensor import Tensor


class GradcheckError(AssertionError):
    """Raised when an analytic gradient does not match the numerical one."""


def numerical_grad(
    fn: Callable[..., Tensor], inputs: Sequence[Tensor], index: int, gy: np.ndarray, eps: float
) -> np.ndarray:
    """d(sum(fn(*inputs) * gy)) / d(inputs[index]) by central differences.

    The input's values are changed in place and restored.
    """
    x = inputs[index].array
    grad = np.zeros(x.shape, dtype=np.float64)
    flat = x.reshape(-1)  # a view: x is contiguous (gradcheck makes it so)
    gflat = grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i].item()
        flat[i] = old + eps
        plus = fn(*inputs).numpy().astype(np.float64)
        flat[i] = old - eps
        minus = fn(*inputs).numpy().astype(np.float64)
        flat[i] = old
        gflat[i] = float(((plus - minus) * gy).sum()) / (2 * eps)
    return grad


def gradcheck(
    fn: Callable[..., Tensor],
    inputs: Sequence[Any],
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
) -> bool:
    """Compare the autograd gradients of `fn(*inputs)` with central differences.

    Floating inputs are converted to float64 and checked when they require grad (all of them when
    none does). The output is contracted with a fixed random tensor, so non-scalar outputs are
    checked in every direction at once. Returns True, or raises GradcheckError naming the input,
    the worst element and both values.
    """
    tensors = []
    for x in inputs:
        if isinstance(x, Tensor) and x.dtype.kind == "f":
            # a float64 copy, C-contiguous: numerical_grad changes its values through a flat view
            t = Tensor(np.array(x.numpy(), dtype=np.float64, order="C"), device=x.device)
            t.requires_grad = x.requires_grad
            tensors.append(t)
        else:
            tensors.append(x)
    floats = [i for i, t in enumerate(tensors) if isinstance(t, Tensor) and t.dtype.kind == "f"]
    check = [i for i in floats if tensors[i].requires_grad] or floats
    for i in check:
        tensors[i].requires_grad = True
        tensors[i].grad = None

    out = fn(*tensors)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    rng = np.random.default_rng(seed)
    gy = rng.standard_normal(out.shape)
    if out.requires_grad:
        out.backward(Tensor(gy, dtype=out.dtype, device=out.device))
    for i in check:
        t = tensors[i]
        analytic = np.zeros(t.shape) if t.grad is None else t.grad.numpy().astype(np.float64)
        numeric = numerical_grad(fn, tensors, i, gy, eps)
        bad = np.abs(analytic - numeric) > atol + rtol * np.abs(numeric)
        if bad.any():
            where = (
                np.unravel_index(int(np.argmax(np.abs(analytic - numeric))), t.shape)
                if t.shape
                else ()
            )
            raise GradcheckError(
                f"gradcheck: input {i} (shape {t.shape}): analytic and numerical gradients differ "
                f"at {len(np.flatnonzero(bad))} of {t.array.size} elements; worst at {where}: "
                f"analytic {analytic[where]:.6g} vs numerical {numeric[where]:.6g}"
            )
    return True
