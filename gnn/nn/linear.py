"""Linear (fully connected) and Identity layers."""

from __future__ import annotations

from typing import Any

from gnn import config, creation
from gnn.nn import init
from gnn.nn.module import Module
from gnn.nn.parameter import Parameter
from gnn.ops.autocast import cast_inputs
from gnn.ops.linalg import Linear as _LinearOp
from gnn.tensor import Tensor


def check_positive(layer: str, **sizes: int) -> None:
    """Raise a ValueError naming the argument when a layer size is not a positive int."""
    for name, value in sizes.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{layer}: {name} must be a positive integer, got {value!r}")


class Identity(Module):
    """Returns its input unchanged."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, x: Tensor) -> Tensor:
        return x


class Linear(Module):
    """y = x @ weight.T + bias; weight (out_features, in_features), PyTorch's default init."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        check_positive("Linear", in_features=in_features, out_features=out_features)
        self.in_features, self.out_features = in_features, out_features
        dtype = dtype or config.get_default_dtype()
        self.weight = Parameter(creation.empty((out_features, in_features), dtype, device))
        if bias:
            self.bias = Parameter(creation.empty((out_features,), dtype, device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.default_linear_init_(self.weight, self.bias)

    def forward(self, x: Tensor) -> Tensor:
        shape = x.array.shape
        if not shape or shape[-1] != self.in_features:
            got = f"{x.shape[-1]} features" if x.ndim else "a 0-d tensor"
            raise ValueError(
                f"Linear(in_features={self.in_features}, out_features={self.out_features}): "
                f"expected {self.in_features} features in the last dim, got {got} "
                f"(input shape {x.shape})"
            )
        # The op itself, not F.linear: the features were checked above, with this layer's name.
        x, weight, bias = cast_inputs("linear", x, self.weight, self.bias)
        if bias is None:
            return _LinearOp.apply(x, weight)
        return _LinearOp.apply(x, weight, bias)

    def extra_repr(self) -> str:
        bias = self.bias is not None
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={bias}"
