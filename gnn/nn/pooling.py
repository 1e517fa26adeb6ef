"""MaxPool2d and AvgPool2d layers (no parameters; stride defaults to kernel_size)."""

from __future__ import annotations

from typing import Any

from gnn import functional as F
from gnn.nn.module import Module
from gnn.ops.conv import int_pair
from gnn.tensor import Tensor


def _check_window(layer: str, kernel_size: Any, stride: Any, padding: Any, dilation: Any) -> None:
    """Fail at construction, naming the argument and its range, on a bad window shape."""
    kernel = int_pair(kernel_size, "kernel_size", layer, 1)
    if stride is not None:
        int_pair(stride, "stride", layer, 1)
    pad = int_pair(padding, "padding", layer, 0)
    dil = int_pair(dilation, "dilation", layer, 1)
    for p, k, d in zip(pad, kernel, dil):
        if p > (d * (k - 1) + 1) // 2:
            raise ValueError(
                f"{layer}: padding must be at most half of the (dilated) kernel size, got "
                f"padding={padding!r}, kernel_size={kernel_size!r}"
            )


class MaxPool2d(Module):
    """Max over kernel_size windows of (N, C, H, W) or (C, H, W)."""

    def __init__(
        self,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        dilation: Any = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        if return_indices:
            raise NotImplementedError("MaxPool2d: return_indices=True is not supported in gnn")
        _check_window("MaxPool2d", kernel_size, stride, padding, dilation)
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool2d(
            x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode
        )

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        )


class AvgPool2d(Module):
    """Mean over kernel_size windows of (N, C, H, W) or (C, H, W)."""

    def __init__(
        self,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
    ) -> None:
        super().__init__()
        _check_window("AvgPool2d", kernel_size, stride, padding, 1)
        if divisor_override is not None and (
            isinstance(divisor_override, bool) or divisor_override == 0
        ):
            raise ValueError(
                f"AvgPool2d: divisor_override must be a non-zero number or None, "
                f"got {divisor_override!r}"
            )
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(
            x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
            self.count_include_pad, self.divisor_override,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
