"""Batch normalisation over (N, C), (N, C, L) or (N, C, H, W): one Function, hand-written backward.

In training the statistics come from the batch (and the running buffers are updated in place);
in evaluation the running statistics are used and are constants for autograd.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gnn.ops._util import Configured
from gnn.ops.autocast import cast_inputs
from gnn.ops.registry import register
from gnn.tensor import Tensor


class BatchNorm(Configured):
    """y = (x - mean) / sqrt(var + eps) * weight + bias per channel (dim 1).

    Training: mean/var over every dim but 1, from the batch; backward needs xhat and 1/std.
    Evaluation: mean/var given (running stats), so the op is an affine map per channel.
    Inputs: x, then weight and bias where given (has_weight, has_bias say which).
    """

    training: bool
    eps: float
    stats: tuple  # (running_mean, running_var) arrays, updated in place in training; or ()
    momentum: float
    has_weight: bool  # read by the ONNX exporter too
    has_bias: bool

    def forward(self, x: Any, *affine: Any) -> Any:
        axes = (0,) + tuple(range(2, x.ndim))
        bshape = (1, x.shape[1]) + (1,) * (x.ndim - 2)  # per-channel values broadcast over x
        acc = np.float64 if x.dtype == np.float64 else np.float32
        xa = x.astype(acc, copy=False)
        if self.training:
            mean = xa.mean(axis=axes, keepdims=True)
            xc = xa - mean
            var = (xc * xc).mean(axis=axes, keepdims=True)
            if self.stats:
                # running = (1 - momentum) * running + momentum * batch, unbiased variance
                n, m = x.size // x.shape[1], self.momentum
                for running, batch in zip(self.stats, (mean, var * (n / (n - 1)))):
                    running *= 1.0 - m
                    running += (m * batch.reshape(-1)).astype(running.dtype, copy=False)
        else:
            mean, var = (a.astype(acc, copy=False).reshape(bshape) for a in self.stats)
            xc = xa - mean
        rstd = 1.0 / self.be.xp.sqrt(var + self.eps)
        xc *= rstd  # now xhat
        w = affine[0].astype(acc, copy=False).reshape(bshape) if self.has_weight else None
        b = affine[-1].astype(acc, copy=False).reshape(bshape) if self.has_bias else None
        self.xhat, self.rstd, self.w, self.axes = xc, rstd, w, axes
        y = xc * w if w is not None else xc.copy() if b is not None else xc
        if b is not None:
            y += b
        return y.astype(x.dtype, copy=False)

    def backward(self, gy: Any) -> Any:
        xhat, rstd, w, axes = self.xhat, self.rstd, self.w, self.axes
        g = gy.astype(xhat.dtype, copy=False)
        gx = None
        if self.needs_input_grad[0]:
            gxhat = g * w if w is not None else g
            if self.training:  # the batch statistics depend on x too
                proj = xhat * (gxhat * xhat).mean(axis=axes, keepdims=True)
                gxhat = gxhat - gxhat.mean(axis=axes, keepdims=True) - proj
            gx = gxhat * rstd
        grads = [gx]
        if self.has_weight:
            grads.append((g * xhat).sum(axis=axes) if self.needs_input_grad[1] else None)
        if self.has_bias:
            grads.append(g.sum(axis=axes) if self.needs_input_grad[-1] else None)
        return tuple(None if gr is None else gr.astype(gy.dtype, copy=False) for gr in grads)


@register()
def batch_norm(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float | None = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise each channel (dim 1); in training, update running_mean/var in place with momentum.

    The running variance is updated with the unbiased batch variance, as in PyTorch. Without
    running statistics (None) the batch's own are used in evaluation too. momentum=None means
    0.1 here; BatchNorm modules turn it into a cumulative average (1 / num_batches_tracked).
    """
    op = "batch_norm"
    input, weight, bias = cast_inputs(op, input, weight, bias)
    if input.ndim < 2:
        raise ValueError(
            f"{op}: expected an input of at least 2 dims (N, C, ...), got {input.shape}"
        )
    c = input.shape[1]
    given = {"running_mean": running_mean, "running_var": running_var}
    for name, t in {**given, "weight": weight, "bias": bias}.items():
        if t is not None and tuple(t.shape) != (c,):
            raise ValueError(
                f"{op}: {name} of shape {t.shape} does not match the {c} channels of the input "
                f"of shape {input.shape}"
            )
    stats = tuple(t.array for t in (running_mean, running_var) if t is not None)
    if len(stats) == 1:
        raise ValueError(f"{op}: give both running_mean and running_var, or neither")
    if training and input.array.size <= c:  # at most one value per channel
        raise ValueError(
            f"{op}: expected more than 1 value per channel when training, got input of shape "
            f"{input.shape} (use a batch of 2 or more, or call .eval())"
        )
    return BatchNorm.apply(
        input,
        *(t for t in (weight, bias) if t is not None),
        training=training or not stats,  # no running statistics: the batch's own, always
        eps=float(eps),
        stats=stats,
        momentum=0.1 if momentum is None else float(momentum),
        has_weight=weight is not None,
        has_bias=bias is not None,
    )
