"""Conv2d and ConvTranspose2d layers: PyTorch's arguments, weight layouts, key names and init."""

from __future__ import annotations

from typing import Any

from gnn import config, creation
from gnn import functional as F
from gnn.nn import init
from gnn.nn.linear import check_positive
from gnn.nn.module import Module
from gnn.nn.parameter import Parameter
from gnn.ops.conv import int_pair
from gnn.tensor import Tensor


class _ConvNd(Module):
    """What Conv2d and ConvTranspose2d share: argument checks, parameters, init, input checks."""

    transposed = False

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any,
        padding: Any,
        dilation: Any,
        groups: int,
        bias: bool,
        padding_mode: str,
        device: Any,
        dtype: Any,
    ) -> None:
        super().__init__()
        layer = type(self).__name__
        check_positive(layer, in_channels=in_channels, out_channels=out_channels, groups=groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"{layer}: in_channels ({in_channels}) and out_channels ({out_channels}) must both "
                f"be divisible by groups ({groups})"
            )
        if padding_mode != "zeros":
            raise ValueError(
                f"{layer}: padding_mode={padding_mode!r} is not supported; "
                "gnn pads with 'zeros' only"
            )
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = int_pair(kernel_size, "kernel_size", layer, 1)
        self.stride = int_pair(stride, "stride", layer, 1)
        self.dilation = int_pair(dilation, "dilation", layer, 1)
        if isinstance(padding, str):
            if padding not in ("same", "valid") or self.transposed:
                raise ValueError(
                    f"{layer}: padding must be an int or a pair"
                    + ("" if self.transposed else ", 'same' or 'valid'")
                    + f", got {padding!r}"
                )
            if padding == "same" and self.stride != (1, 1):
                raise ValueError(
                    f"{layer}: padding='same' is not supported for strided convolutions"
                )
            self.padding: Any = padding
        else:
            self.padding = int_pair(padding, "padding", layer, 0)
        self.padding_mode = padding_mode
        dtype = dtype or config.get_default_dtype()
        kh, kw = self.kernel_size
        if self.transposed:
            shape = (in_channels, out_channels // groups, kh, kw)
        else:
            shape = (out_channels, in_channels // groups, kh, kw)
        self.weight = Parameter(creation.empty(shape, dtype, device))
        if bias:
            self.bias = Parameter(creation.empty((out_channels,), dtype, device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """kaiming_uniform_(a=sqrt(5)) weights, U(+-1/sqrt(fan_in)) bias, as PyTorch."""
        init.default_linear_init_(self.weight, self.bias)

    def _check(self, x: Tensor) -> None:
        if x.ndim not in (3, 4) or x.shape[-3] != self.in_channels:
            got = f"{x.shape[-3]} channels" if x.ndim in (3, 4) else f"a {x.ndim}-D input"
            raise ValueError(
                f"{type(self).__name__}({self.in_channels}, {self.out_channels}, "
                f"kernel_size={self.kernel_size}): expected input (N, {self.in_channels}, H, W) or "
                f"({self.in_channels}, H, W) with {self.in_channels} channels, got {got} "
                f"(input shape {x.shape})"
            )

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
        s += f", stride={self.stride}"
        if self.padding not in ((0, 0), "valid"):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if getattr(self, "output_padding", (0, 0)) != (0, 0):
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class Conv2d(_ConvNd):
    """2-D convolution over (N, C, H, W); weight (out_channels, in_channels/groups, kh, kw)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
            padding_mode, device, dtype,
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        return F.conv2d(
            x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups
        )


class ConvTranspose2d(_ConvNd):
    """Transposed 2-D convolution; weight (in_channels, out_channels/groups, kh, kw)."""

    transposed = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        output_padding: Any = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: Any = 1,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
            padding_mode, device, dtype,
        )  # fmt: skip
        self.output_padding = int_pair(output_padding, "output_padding", "ConvTranspose2d", 0)
        for op, s, d in zip(self.output_padding, self.stride, self.dilation):
            if op >= s and op >= d:
                raise ValueError(
                    f"ConvTranspose2d: output_padding must be smaller than stride or dilation, "
                    f"got output_padding={self.output_padding}, stride={self.stride}, "
                    f"dilation={self.dilation}"
                )

    def _output_padding(self, x: Tensor, output_size: Any) -> tuple[int, int]:
        """output_padding that makes the output `output_size` (H, W), as PyTorch's forward does."""
        size = tuple(output_size)[-2:]
        pads = []
        for d in range(2):
            smallest = (
                (x.shape[-2 + d] - 1) * self.stride[d] - 2 * self.padding[d]
                + self.dilation[d] * (self.kernel_size[d] - 1) + 1
            )  # fmt: skip
            extra = size[d] - smallest
            if not 0 <= extra < max(self.stride[d], self.dilation[d]):
                raise ValueError(
                    f"ConvTranspose2d: requested output size {size} is not reachable from input "
                    f"{x.shape}; dim {d} must be in [{smallest}, "
                    f"{smallest + max(self.stride[d], self.dilation[d]) - 1}]"
                )
            pads.append(extra)
        return pads[0], pads[1]

    def forward(self, x: Tensor, output_size: Any = None) -> Tensor:
        self._check(x)
        out_pad = (
            self.output_padding if output_size is None else self._output_padding(x, output_size)
        )
        return F.conv_transpose2d(
            x, self.weight, self.bias, self.stride, self.padding, out_pad, self.groups,
            self.dilation,
        )  # fmt: skip
