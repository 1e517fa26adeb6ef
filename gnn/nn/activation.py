"""Activation layers: thin Modules over gnn.functional."""

from __future__ import annotations

import warnings

from gnn import functional as F
from gnn.nn.module import Module
from gnn.tensor import Tensor


def _check_dim(layer: str, dim: int | None) -> int | None:
    if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int)):
        raise TypeError(f"{layer}: dim must be an int or None, got {dim!r}")
    return dim


def _implicit_dim(layer: str, ndim: int) -> int:
    """PyTorch's legacy choice for dim=None (0 for 0-, 1- and 3-D inputs, else 1), with its
    warning."""
    warnings.warn(
        f"{layer}: implicit dimension choice (dim=None) is deprecated; pass dim explicitly",
        stacklevel=3,
    )
    return 0 if ndim in (0, 1, 3) else 1


class ReLU(Module):
    """max(x, 0) elementwise (`inplace` is accepted for PyTorch code; gnn never writes in place)."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class LeakyReLU(Module):
    """x where x >= 0, negative_slope * x elsewhere."""

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        super().__init__()
        if isinstance(negative_slope, bool) or not isinstance(negative_slope, (int, float)):
            raise TypeError(f"LeakyReLU: negative_slope must be a number, got {negative_slope!r}")
        self.negative_slope = float(negative_slope)
        self.inplace = inplace  # accepted for PyTorch compatibility; gnn never writes in place

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class Sigmoid(Module):
    """1 / (1 + exp(-x)) elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return F.sigmoid(x)


class Tanh(Module):
    """tanh(x) elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return F.tanh(x)


class GELU(Module):
    """x * Phi(x) (approximate="none"), or its tanh approximation (approximate="tanh")."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(x, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Softmax(Module):
    """softmax over `dim` (default -1; None picks PyTorch's legacy dim, with a warning)."""

    def __init__(self, dim: int | None = -1) -> None:
        super().__init__()
        self.dim = _check_dim("Softmax", dim)

    def forward(self, x: Tensor) -> Tensor:
        dim = _implicit_dim("Softmax", x.ndim) if self.dim is None else self.dim
        return F.softmax(x, dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """log_softmax over `dim` (default -1; None picks PyTorch's legacy dim, with a warning)."""

    def __init__(self, dim: int | None = -1) -> None:
        super().__init__()
        self.dim = _check_dim("LogSoftmax", dim)

    def forward(self, x: Tensor) -> Tensor:
        dim = _implicit_dim("LogSoftmax", x.ndim) if self.dim is None else self.dim
        return F.log_softmax(x, dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
