"""Gradient clipping, regularisation penalties and flat parameter vectors (torch.nn.utils names).

The clipping functions work in place on `p.grad.array` and never read a value back to the host
(unless error_if_nonfinite asks them to).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from gnn.backend.fused import clip_grad_norm as fused_clip
from gnn.config import no_grad
from gnn.tensor import Tensor


def _as_list(parameters: Tensor | Iterable[Tensor], who: str) -> list[Tensor]:
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    for p in params:
        if not isinstance(p, Tensor):
            raise TypeError(f"{who}: expected Tensors, got {type(p).__name__}")
    return params


@no_grad()
def clip_grad_norm_(
    parameters: Tensor | Iterable[Tensor],
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> Tensor:
    """Scale all gradients together so their joint norm is at most max_norm; returns that norm.

    As PyTorch: every gradient is multiplied by min(1, max_norm / (total_norm + 1e-6)), on the
    device, and the norm comes back as a 0-d tensor without being read to the host. On a GPU, for
    norm_type 2 and inf, that is two kernel launches per gradient dtype however many parameters
    there are (gnn/backend/fused/clip_grad_norm.py). error_if_nonfinite=True has to read the
    norm back to test it, which waits for the device (a sync), before any gradient is scaled.
    """
    who = "clip_grad_norm_"
    norm_type = float(norm_type)
    if math.isnan(norm_type) or (norm_type < 0 and not math.isinf(norm_type)):
        raise ValueError(f"{who}: norm_type must be >= 0 or inf, got {norm_type}")
    max_norm = float(max_norm)
    params = _as_list(parameters, who)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        from gnn.creation import tensor

        return tensor(0.0)
    be = grads[0].backend
    for g in grads:
        if g.backend is not be:
            raise RuntimeError(
                f"{who}: gradients on different devices ({be.device} and {g.backend.device})"
            )
    arrays = [g.array for g in grads]
    if not error_if_nonfinite:
        total = fused_clip.forward(be, arrays, fused_clip.ClipSpec(max_norm, norm_type))
        return Tensor.wrap(total, be)
    total = fused_clip.total_norm(be.xp, arrays, norm_type)
    if not bool(be.xp.isfinite(total)):  # the sync error_if_nonfinite asks for
        raise RuntimeError(
            f"{who}: the total norm of order {norm_type} of the gradients is {float(total)}, so "
            "they cannot be clipped; set error_if_nonfinite=False to skip this check"
        )
    fused_clip.scale_(be.xp, arrays, total, max_norm)
    return Tensor.wrap(total, be)


@no_grad()
def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float) -> None:
    """Clamp every gradient element to [-clip_value, clip_value], in place."""
    clip_value = float(clip_value)
    if not clip_value >= 0:
        raise ValueError(f"clip_grad_value_: clip_value must be >= 0, got {clip_value}")
    for p in _as_list(parameters, "clip_grad_value_"):
        if p.grad is not None:
            g = p.grad.array
            p.grad.backend.xp.clip(g, -clip_value, clip_value, out=g)


def l1_penalty(parameters: Tensor | Iterable[Tensor], weight: float) -> Tensor:
    """weight * sum of |p| over all parameters: a differentiable term to add to the loss."""
    return _penalty(parameters, weight, "l1_penalty", lambda p: p.abs().sum())


def l2_penalty(parameters: Tensor | Iterable[Tensor], weight: float) -> Tensor:
    """weight * sum of p**2 over all parameters (Keras's l2; no factor 1/2), differentiable."""
    return _penalty(parameters, weight, "l2_penalty", lambda p: (p * p).sum())


def _penalty(parameters: Any, weight: float, who: str, term: Any) -> Tensor:
    weight = float(weight)
    if not weight >= 0:
        raise ValueError(f"{who}: weight must be >= 0, got {weight}")
    params = _as_list(parameters, who)
    if not params:
        raise ValueError(f"{who}: got no parameters")
    total = term(params[0])
    for p in params[1:]:
        total = total + term(p)
    return total * weight


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """All parameters flattened and joined into one 1-D Tensor (a copy, cut from the graph)."""
    params = _as_list(parameters, "parameters_to_vector")
    if not params:
        raise ValueError("parameters_to_vector: got no parameters")
    be = params[0].backend
    data = be.xp.concatenate([p.array.reshape(-1) for p in params])
    return Tensor.wrap(data, be)


@no_grad()
def vector_to_parameters(vec: Tensor, parameters: Iterable[Tensor]) -> None:
    """Copy consecutive slices of the 1-D `vec` into the parameters, in place."""
    params = _as_list(parameters, "vector_to_parameters")
    total = sum(p.numel() for p in params)
    if vec.ndim != 1 or vec.shape[0] != total:
        raise ValueError(
            f"vector_to_parameters: vec must be 1-D with {total} elements, got shape {vec.shape}"
        )
    offset = 0
    for p in params:
        n = p.numel()
        p.array[...] = vec.array[offset : offset + n].reshape(p.shape)
        offset += n


__all__ = [
    "clip_grad_norm_", "clip_grad_value_", "l1_penalty", "l2_penalty", "parameters_to_vector",
    "vector_to_parameters",
]  # fmt: skip
