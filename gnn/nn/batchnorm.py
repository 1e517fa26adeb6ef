"""BatchNorm1d and BatchNorm2d: per-channel normalisation with running statistics as buffers."""

from __future__ import annotations

from typing import Any

import numpy as np

from gnn import config, creation
from gnn import functional as F
from gnn.dtypes import is_floating
from gnn.nn import init
from gnn.nn.linear import check_positive
from gnn.nn.module import Module
from gnn.nn.parameter import Parameter
from gnn.tensor import Tensor


class _BatchNorm(Module):
    """Shared by BatchNorm1d/2d: weight, bias; running_mean, running_var, num_batches_tracked."""

    dims: tuple[int, ...] = ()
    shapes = ""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        layer = type(self).__name__
        check_positive(layer, num_features=num_features)
        if not eps > 0:
            raise ValueError(f"{layer}: eps must be > 0, got {eps!r}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"{layer}: momentum must be in [0, 1] or None, got {momentum!r}")
        self.num_features, self.eps, self.momentum = num_features, float(eps), momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        dtype = dtype or config.get_default_dtype()
        if affine:
            self.weight = Parameter(creation.empty((num_features,), dtype, device))
            self.bias = Parameter(creation.empty((num_features,), dtype, device))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer(
                "running_mean", creation.zeros(num_features, dtype=dtype, device=device)
            )
            self.register_buffer(
                "running_var", creation.ones(num_features, dtype=dtype, device=device)
            )
            tracked = creation.zeros((), dtype=np.int64, device=self.running_mean.device)
            self.register_buffer("num_batches_tracked", tracked)
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        """running_mean = 0, running_var = 1, num_batches_tracked = 0."""
        if self.track_running_stats:
            self.running_mean.array[...] = 0
            self.running_var.array[...] = 1
            self.num_batches_tracked.array[...] = 0

    def reset_parameters(self) -> None:
        """Running stats reset; weight = 1, bias = 0."""
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        layer = type(self).__name__
        if not isinstance(x, Tensor):
            raise TypeError(f"{layer}: the input must be a gnn Tensor, got {type(x).__name__}")
        if not is_floating(x.dtype):
            # integer statistics would be truncated: the output would be silently wrong
            raise TypeError(
                f"{layer}: expected a floating-point input, got {x.dtype}; convert it with "
                "x.float()"
            )
        if x.ndim not in self.dims:
            raise ValueError(f"{layer}: expected {self.shapes} input, got shape {x.shape}")
        if x.shape[1] != self.num_features:
            raise ValueError(
                f"{layer}({self.num_features}): expected {self.num_features} channels in dim 1, "
                f"got {x.shape[1]} (input shape {x.shape})"
            )
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and x.array.size // x.shape[1] <= 1:
            raise ValueError(
                f"{layer}: expected more than 1 value per channel when training, got input "
                f"of shape {x.shape} (use a batch of 2 or more, or call .eval())"
            )
        if self.training and self.track_running_stats:
            self.num_batches_tracked.array += 1
            if self.momentum is None:  # cumulative moving average
                momentum = 1.0 / float(self.num_batches_tracked.array)
        use_batch_stats = self.training or not self.track_running_stats
        # Running stats are updated only while training (and read only in evaluation).
        track = self.track_running_stats and (self.training or not use_batch_stats)
        return F.batch_norm(
            x,
            self.running_mean if track else None,
            self.running_var if track else None,
            self.weight,
            self.bias,
            use_batch_stats,
            momentum,
            self.eps,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) inputs over N (and L)."""

    dims = (2, 3)
    shapes = "2-D (N, C) or 3-D (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) inputs over N, H and W."""

    dims = (4,)
    shapes = "4-D (N, C, H, W)"
