"""The Keras face: Dense (input size inferred at first call), Activation, Dropout, Flatten,
regularizers and optimizers over gnn.nn, and Sequential (gnn.train's Keras Sequential)."""

from __future__ import annotations

import math
import types
import warnings
from collections.abc import Callable
from typing import Any

from gnn import config, creation
from gnn import functional as F
from gnn.backend import get_backend
from gnn.nn import init
from gnn.nn.module import Module
from gnn.nn.parameter import Parameter
from gnn.optimizers import SGD, Adam, AdamW, RMSprop
from gnn.tensor import Tensor
from gnn.train.model import Model, Sequential

# ---- activations ---------------------------------------------------------------------------------


def _linear(x: Tensor) -> Tensor:
    return x


def _silu(x: Tensor) -> Tensor:
    return x * F.sigmoid(x)


ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "linear": _linear,
    "relu": F.relu,
    "sigmoid": F.sigmoid,
    "tanh": F.tanh,
    "softmax": lambda x: F.softmax(x, -1),
    "log_softmax": lambda x: F.log_softmax(x, -1),
    "gelu": F.gelu,
    "leaky_relu": F.leaky_relu,
    "silu": _silu,
    "swish": _silu,
}


def _activation(activation: Any, who: str) -> tuple[str, Callable[[Tensor], Tensor]]:
    if activation is None:
        return "linear", _linear
    if isinstance(activation, str):
        fn = ACTIVATIONS.get(activation.lower())
        if fn is None:
            raise ValueError(
                f"{who}: unknown activation {activation!r}; known: {', '.join(ACTIVATIONS)}"
            )
        return activation.lower(), fn
    if callable(activation):
        return getattr(activation, "__name__", "custom"), activation
    raise TypeError(
        f"{who}: activation must be a name or a callable, got {type(activation).__name__}"
    )


# ---- regularizers --------------------------------------------------------------------------------


class Regularizer:
    """Adds a penalty on a weight to the training loss: l1 * sum|w| + l2 * sum(w^2)."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0) -> None:
        if l1 < 0 or l2 < 0:
            raise ValueError(f"regularizer: l1 and l2 must be >= 0, got l1={l1}, l2={l2}")
        self.l1, self.l2 = float(l1), float(l2)

    def __call__(self, w: Tensor) -> Tensor:
        total = None
        if self.l1:
            total = self.l1 * w.abs().sum()
        if self.l2:
            term = self.l2 * (w * w).sum()
            total = term if total is None else total + term
        return total if total is not None else (w * 0.0).sum()

    def __repr__(self) -> str:
        return f"L1L2(l1={self.l1}, l2={self.l2})"


def l1(l1: float = 0.01) -> Regularizer:
    """L1 penalty l1 * sum|w| (Keras default 0.01)."""
    return Regularizer(l1=l1)


def l2(l2: float = 0.01) -> Regularizer:
    """L2 penalty l2 * sum(w^2) (Keras default 0.01; no factor 1/2, as in Keras)."""
    return Regularizer(l2=l2)


def l1_l2(l1: float = 0.01, l2: float = 0.01) -> Regularizer:
    """Both penalties."""
    return Regularizer(l1=l1, l2=l2)


regularizers = types.SimpleNamespace(
    Regularizer=Regularizer, L1L2=Regularizer, l1=l1, l2=l2, l1_l2=l1_l2
)


def _regularizer(value: Any, who: str) -> Regularizer | None:
    if value is None or isinstance(value, Regularizer) or callable(value):
        return value
    if isinstance(value, str) and value in ("l1", "l2", "l1_l2"):
        return {"l1": l1, "l2": l2, "l1_l2": l1_l2}[value]()
    raise ValueError(
        f"{who}: unknown regularizer {value!r}; use 'l1', 'l2', 'l1_l2' or regularizers.l2(0.01)"
    )


# Keras-spelled optimizers, also at gnn.optimizers: gnn.layers.optimizers.Adam(learning_rate=...)
optimizers = types.SimpleNamespace(Adam=Adam, AdamW=AdamW, SGD=SGD, RMSprop=RMSprop)


# ---- layers --------------------------------------------------------------------------------------

INITIALIZERS = ("glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "zeros", "torch")


class Dense(Module):
    """A fully connected layer, Keras style: activation(x @ weight.T + bias).

    The input size is taken from the first input (or from input_shape / input_dim). Parameters keep
    PyTorch's layout and names: weight (units, in_features), bias (units,), so state dicts match
    nn.Linear's. kernel_initializer: "glorot_uniform" (Keras's default), "glorot_normal",
    "he_uniform", "he_normal" or "torch" (nn.Linear's init).
    """

    weight: Parameter | None  # None until built (from the first input, input_shape or input_dim)
    bias: Parameter | None  # also None without use_bias

    def __init__(
        self,
        units: int,
        activation: Any = None,
        input_shape: Any = None,
        kernel_regularizer: Any = None,
        use_bias: bool = True,
        input_dim: int | None = None,
        kernel_initializer: str = "glorot_uniform",
        bias_regularizer: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
            raise ValueError(f"Dense: units must be a positive integer, got {units!r}")
        if kernel_initializer not in INITIALIZERS:
            raise ValueError(
                f"Dense: unknown kernel_initializer {kernel_initializer!r}; "
                f"known: {', '.join(INITIALIZERS)}"
            )
        self.units = units
        self.activation_name, self._activation = _activation(activation, "Dense")
        if units == 1 and self.activation_name == "softmax":
            warnings.warn(
                "Dense(1, activation='softmax') always outputs 1.0 (a softmax over one value); "
                "for two classes use Dense(1, activation='sigmoid') with binary_crossentropy, "
                "or Dense(2, activation='softmax') with sparse_categorical_crossentropy",
                stacklevel=2,
            )
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.kernel_regularizer = _regularizer(kernel_regularizer, "Dense")
        self.bias_regularizer = _regularizer(bias_regularizer, "Dense")
        self._dtype = dtype
        self.in_features: int | None = None
        # Until the weights exist, an empty non-persistent buffer stands in for them: Module.to
        # moves it like any buffer, so `Sequential(Dense(4), ...).to("cuda")` (or .double())
        # builds the weights on that device and dtype at the first call, as PyTorch's lazy
        # modules do. It is removed once the weights are built.
        probe = creation.empty((0,), dtype or config.get_default_dtype())
        self._placement_start = (str(probe.device), probe.dtype)
        self.register_buffer("_placement", probe, persistent=False)
        self.input_shape = None
        self.register_parameter("weight", None)
        self.register_parameter("bias", None)
        if input_dim is not None:
            input_shape = (input_dim,)
        if input_shape is not None:
            shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
            self.input_shape = shape
            self.build(shape[-1])

    @property
    def built(self) -> bool:
        return self.in_features is not None

    def _moved(self) -> bool:
        """Whether .to() moved this unbuilt layer away from where it was made."""
        probe = self._buffers.get("_placement")
        return probe is not None and (str(probe.device), probe.dtype) != self._placement_start

    def lazy_placement(self) -> tuple[Any, Any] | None:
        """(device, dtype) the weights will be built with, or None once they exist: where .to()
        put this layer, else the default device and the layer's dtype (or the default dtype)."""
        probe = self._buffers.get("_placement")
        if probe is None:
            return None
        if self._moved():
            return probe.device, probe.dtype
        return get_backend(None).device, self._dtype or config.get_default_dtype()

    def build(self, in_features: int, device: Any = None) -> None:
        """Create weight (units, in_features) and bias (units,) and initialise them.

        They go where lazy_placement() says; an unmoved layer called on an input builds on the
        input's device.
        """
        if not isinstance(in_features, int) or in_features <= 0:
            raise ValueError(
                f"Dense({self.units}): input size must be a positive integer, got {in_features!r}"
            )
        placement = self.lazy_placement()
        if placement is None:  # rebuilt by hand: the device of the old weights
            old = self.weight
            assert old is not None  # the placement buffer is dropped only once weights exist
            placement = (old.device, old.dtype)
        if device is None or self._moved():
            device = placement[0]
        dtype = placement[1]
        if "_placement" in self._buffers:
            del self._placement  # the buffer and its attribute copy
        self._non_persistent.discard("_placement")
        self.in_features = in_features
        # Initialised on the CPU, from gnn's seeded generator, then moved: after manual_seed a
        # model starts from the same weights on every device (the GPU's generator differs).
        self.weight = weight = Parameter(creation.empty((self.units, in_features), dtype, "cpu"))
        bias = None
        if self.use_bias:
            self.bias = bias = Parameter(creation.empty((self.units,), dtype, "cpu"))
        self.reset_parameters()
        if weight.device != device:
            self.weight = Parameter(weight.detach().to(device))
            if bias is not None:
                self.bias = Parameter(bias.detach().to(device))

    def reset_parameters(self) -> None:
        """Initialise the kernel as kernel_initializer says; the bias to zeros (Keras)."""
        w, kind, fan_in = self.weight, self.kernel_initializer, self.in_features
        if w is None or fan_in is None:
            raise RuntimeError(
                f"Dense({self.units}): no weights to initialise yet; they are built at the first "
                "call, or at construction from input_shape or input_dim"
            )
        if kind == "torch":
            init.default_linear_init_(w, self.bias)
            return
        if kind == "glorot_uniform":
            init.xavier_uniform_(w)
        elif kind == "glorot_normal":
            init.xavier_normal_(w)
        elif kind == "he_uniform":
            bound = math.sqrt(6.0 / fan_in)
            init.uniform_(w, -bound, bound)
        elif kind == "he_normal":
            init.normal_(w, 0.0, math.sqrt(2.0 / fan_in))
        elif kind == "zeros":
            init.zeros_(w)
        if self.bias is not None:
            init.zeros_(self.bias)

    def pre_activation(self, x: Tensor) -> Tensor:
        """x @ weight.T + bias, before the activation (what fit feeds a fused loss)."""
        if self.in_features is None:
            if x.ndim == 0:
                raise ValueError(
                    f"Dense({self.units}): input must have a feature dimension, got a 0-d tensor"
                )
            self.build(x.shape[-1], device=x.device)
        elif x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"Dense({self.units}): expected input with {self.in_features} features in the "
                f"last dim, "
                f"got shape {x.shape}"
            )
        assert self.weight is not None  # built above, or at construction
        return F.linear(x, self.weight, self.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self._activation(self.pre_activation(x))

    def extra_repr(self) -> str:
        inp = self.in_features if self.in_features is not None else "?"
        return f"units={self.units}, in_features={inp}, activation={self.activation_name!r}"


class Activation(Module):
    """An activation by name: Activation("relu"), Activation("softmax"), ..."""

    def __init__(self, activation: Any) -> None:
        super().__init__()
        self.activation_name, self._activation = _activation(activation, "Activation")

    def forward(self, x: Tensor) -> Tensor:
        return self._activation(x)

    def pre_activation(self, x: Tensor) -> Tensor:
        """The input unchanged (the logits, when this layer ends the model)."""
        return x

    def extra_repr(self) -> str:
        return repr(self.activation_name)


class Dropout(Module):
    """Keras's Dropout(rate): zero a `rate` share of inputs while training, scaling the rest."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout: rate must be in [0, 1), got {rate}")
        self.rate = float(rate)

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.rate, self.training)

    def extra_repr(self) -> str:
        return f"rate={self.rate}"


class Flatten(Module):
    """(N, d1, d2, ...) -> (N, d1 * d2 * ...)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], -1)


__all__ = [
    "Activation", "Dense", "Dropout", "Flatten", "Model", "Regularizer", "Sequential", "l1",
    "l1_l2", "l2", "optimizers", "regularizers",
]  # fmt: skip
