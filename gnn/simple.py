"""The brain.js face: NeuralNetwork(hidden_layers=[3]).train([{"input": ..., "output": ...}]).

Same semantics as brain.js's NeuralNetwork: every layer (the output layer too) uses the chosen
activation, training is online (one update per sample, in the given order), the reported error is
the mean over samples of the mean squared output error, weights move by
    change = learning_rate * delta * input + momentum * previous change
and biases by learning_rate * delta (no momentum). Underneath it is a gnn.nn.Sequential of
Linear layers, trained by gnn.optim.SGD (momentum on the weights' group only), so it runs on any
device gnn supports.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

import gnn
from gnn import nn, optim
from gnn.config import no_grad

ACTIVATIONS = ("sigmoid", "relu", "leaky-relu", "tanh")


def _activation_module(name: str, alpha: float) -> nn.Module:
    if name == "sigmoid":
        return nn.Sigmoid()
    if name == "relu":
        return nn.ReLU()
    if name == "leaky-relu":
        return nn.LeakyReLU(alpha)
    return nn.Tanh()


class NeuralNetwork:
    """A feed-forward network trained on lists of {"input": ..., "output": ...} samples.

    Inputs and outputs are lists of numbers, or dicts of named values (missing names count as 0,
    as in brain.js). hidden_layers=None picks max(3, inputs // 2) units, as brain.js does.
    """

    def __init__(
        self,
        hidden_layers: Sequence[int] | None = (3,),
        activation: str = "sigmoid",
        learning_rate: float = 0.3,
        momentum: float = 0.1,
        binary_thresh: float = 0.5,
        leaky_relu_alpha: float = 0.01,
        device: Any = None,
    ) -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"NeuralNetwork: unknown activation {activation!r}; known: {', '.join(ACTIVATIONS)}"
            )
        if hidden_layers is not None:
            if isinstance(hidden_layers, (int, float, str)) or not hasattr(
                hidden_layers, "__iter__"
            ):
                raise TypeError(
                    f"NeuralNetwork: hidden_layers must be a list of layer sizes, got "
                    f"{hidden_layers!r} (for one hidden layer of {hidden_layers} units, pass "
                    f"[{hidden_layers}])"
                )
            hidden_layers = [int(h) for h in hidden_layers]
            if any(h <= 0 for h in hidden_layers):
                raise ValueError(
                    f"NeuralNetwork: hidden layer sizes must be positive, got {hidden_layers}"
                )
        if not learning_rate > 0:
            raise ValueError(f"NeuralNetwork: learning_rate must be > 0, got {learning_rate}")
        if momentum < 0:
            raise ValueError(f"NeuralNetwork: momentum must be >= 0, got {momentum}")
        self.hidden_layers = hidden_layers
        self.activation = activation
        self.learning_rate = float(learning_rate)
        self.momentum = float(momentum)
        self.binary_thresh = float(binary_thresh)
        self.leaky_relu_alpha = float(leaky_relu_alpha)
        self.device = device
        self.sizes: list[int] = []
        self.model: nn.Sequential | None = None
        self.input_lookup: dict[str, int] | None = None
        self.output_lookup: dict[str, int] | None = None
        self._optimizer: optim.SGD | None = None

    # ---- building -------------------------------------------------------------------------------

    def _initialize(self, sizes: list[int]) -> nn.Sequential:
        """Build fresh layers for `sizes` (inputs, hidden..., outputs); returns self.model."""
        self.sizes = list(sizes)
        layers: list[nn.Module] = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            lin = nn.Linear(n_in, n_out, device=self.device)
            with no_grad():  # brain.js draws every weight and bias from U(-0.2, 0.2)
                nn.init.uniform_(lin.weight, -0.2, 0.2)
                nn.init.uniform_(lin.bias, -0.2, 0.2)
            layers += [lin, _activation_module(self.activation, self.leaky_relu_alpha)]
        model = self.model = nn.Sequential(*layers)
        self._optimizer = None
        return model

    def _make_optimizer(self, model: nn.Sequential, learning_rate: float) -> optim.SGD:
        weights = [m.weight for m in model if isinstance(m, nn.Linear)]
        biases = [m.bias for m in model if isinstance(m, nn.Linear)]
        return optim.SGD(
            [{"params": weights, "momentum": self.momentum}, {"params": biases, "momentum": 0.0}],
            lr=learning_rate,
        )

    # ---- data formatting ------------------------------------------------------------------------

    @staticmethod
    def _lookup(values: list[Any]) -> dict[str, int]:
        table: dict[str, int] = {}
        for v in values:
            for k in v:
                table.setdefault(str(k), len(table))
        return table

    @staticmethod
    def _to_array(value: Any, table: dict[str, int] | None, what: str) -> np.ndarray:
        if isinstance(value, Mapping):
            if table is None:
                raise ValueError(
                    f"NeuralNetwork: {what} is a dict, but the network was trained on lists"
                )
            arr = np.zeros(len(table), dtype=np.float64)
            for k, v in value.items():
                if str(k) in table:
                    arr[table[str(k)]] = float(v)
            return arr
        if table is not None:
            raise ValueError(
                f"NeuralNetwork: {what} is a list, but the network was trained on dicts "
                f"with keys {list(table)}"
            )
        return np.asarray(value, dtype=np.float64).reshape(-1)

    def _format(self, data: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        if not data:
            raise ValueError("NeuralNetwork.train: no training data")
        for i, d in enumerate(data):
            if not isinstance(d, Mapping) or "input" not in d or "output" not in d:
                raise ValueError(
                    f"NeuralNetwork.train: sample {i} must be a dict with 'input' and "
                    f"'output', got {d!r}"
                )
        if isinstance(data[0]["input"], Mapping) and self.input_lookup is None:
            self.input_lookup = self._lookup([d["input"] for d in data])
        if isinstance(data[0]["output"], Mapping) and self.output_lookup is None:
            self.output_lookup = self._lookup([d["output"] for d in data])
        xs = [
            self._to_array(d["input"], self.input_lookup, f"sample {i} input")
            for i, d in enumerate(data)
        ]
        ys = [
            self._to_array(d["output"], self.output_lookup, f"sample {i} output")
            for i, d in enumerate(data)
        ]
        for name, rows in (("input", xs), ("output", ys)):
            lengths = sorted({len(r) for r in rows})
            if len(lengths) != 1:
                raise ValueError(
                    f"NeuralNetwork.train: every {name} must have the same length, got {lengths}"
                )
        x, y = np.stack(xs), np.stack(ys)
        for name, a in (("input", x), ("output", y)):
            bad = np.flatnonzero(~np.isfinite(a).all(axis=1))
            if bad.size:
                raise ValueError(
                    f"NeuralNetwork.train: the {name} of sample {bad[0]} is not finite "
                    f"({a[bad[0]].tolist()}); {bad.size} sample(s) have NaN or infinite values"
                )
        return x, y

    # ---- training -------------------------------------------------------------------------------

    def train(
        self,
        data: Sequence[Mapping[str, Any]],
        iterations: int = 20000,
        error_thresh: float = 0.005,
        log: bool | Callable[[dict], None] = False,
        log_period: int = 10,
        learning_rate: float | None = None,
        momentum: float | None = None,
        callback: Callable[[dict], None] | None = None,
        callback_period: int = 10,
    ) -> dict[str, float]:
        """Train until error <= error_thresh or `iterations` passes; {"error", "iterations"}."""
        if iterations <= 0 or log_period <= 0 or callback_period <= 0:
            raise ValueError(
                "NeuralNetwork.train: iterations, log_period and callback_period must be > 0"
            )
        if not isinstance(error_thresh, (int, float)) or math.isnan(error_thresh):
            raise ValueError(
                f"NeuralNetwork.train: error_thresh must be a number, got {error_thresh!r} "
                "(NaN would never stop training and report no error)"
            )
        if momentum is not None:
            self.momentum = float(momentum)
            self._optimizer = None
        x, y = self._format(data)
        model = self.model
        if model is None:
            hidden = self.hidden_layers
            if hidden is None:
                hidden = [max(3, x.shape[1] // 2)]
            model = self._initialize([x.shape[1], *hidden, y.shape[1]])
        elif x.shape[1] != self.sizes[0] or y.shape[1] != self.sizes[-1]:
            raise ValueError(
                f"NeuralNetwork.train: the network has {self.sizes[0]} inputs and "
                f"{self.sizes[-1]} outputs; the data has {x.shape[1]} and {y.shape[1]}"
            )
        lr = self.learning_rate if learning_rate is None else float(learning_rate)
        if self._optimizer is None or self._optimizer.param_groups[0]["lr"] != lr:
            self._optimizer = self._make_optimizer(model, lr)
        opt = self._optimizer
        device = next(model.parameters()).device
        dtype = next(model.parameters()).dtype
        xs = [gnn.tensor(row[None, :], dtype=dtype, device=device) for row in x]
        ys = [gnn.tensor(row[None, :], dtype=dtype, device=device) for row in y]
        n_out = y.shape[1]
        logger = print if log is True else (log or None)
        model.train()
        error, done = 1.0, 0
        while done < iterations and error > error_thresh:
            done += 1
            total = 0.0
            for xi, yi in zip(xs, ys):
                opt.zero_grad()
                diff = model(xi) - yi
                loss = (diff * diff).sum() * 0.5  # its gradient is brain.js's output delta
                loss.backward()
                opt.step()
                total += 2.0 * float(loss.item()) / n_out  # mean squared error of this sample
            error = total / len(xs)
            if not math.isfinite(error):
                # NaN compares false with error_thresh, so the loop would end looking converged
                raise FloatingPointError(
                    f"NeuralNetwork.train: training diverged at iteration {done}: the error is "
                    f"{error} (learning_rate={lr}, momentum={self.momentum}); try a lower "
                    "learning_rate, or scale the inputs to about [-1, 1]"
                )
            status = {"iterations": done, "error": error}
            if logger is not None and done % log_period == 0:
                if logger is print:
                    print(f"iterations: {done}, training error: {error}")
                else:
                    logger(status)
            if callback is not None and done % callback_period == 0:
                callback(status)
        return {"error": error, "iterations": done}

    # ---- using ----------------------------------------------------------------------------------

    def run(self, input: Any) -> Any:
        """The network's output for one input: a list, or a dict when trained on dict outputs."""
        model = self.model
        if model is None:
            raise RuntimeError(
                "NeuralNetwork.run: the network is not trained yet (call train first)"
            )
        x = self._to_array(input, self.input_lookup, "input")
        if x.shape[0] != self.sizes[0]:
            raise ValueError(
                f"NeuralNetwork.run: expected {self.sizes[0]} inputs, got {x.shape[0]}"
            )
        p = next(model.parameters())
        with no_grad():
            out = model(gnn.tensor(x[None, :], dtype=p.dtype, device=p.device)).numpy()[0]
        values = [float(v) for v in out]
        if self.output_lookup is not None:
            return {k: values[i] for k, i in self.output_lookup.items()}
        return values

    def test(self, data: Sequence[Mapping[str, Any]]) -> dict[str, float]:
        """Mean squared error and (for one output) accuracy at binary_thresh over `data`."""
        x, y = self._format(data)
        model = self.model
        if model is None:  # as run() says (it was an AttributeError on None)
            raise RuntimeError(
                "NeuralNetwork.test: the network is not trained yet (call train first)"
            )
        outs = np.array([self._raw_run(model, row) for row in x])
        result = {"error": float(np.mean((outs - y) ** 2))}
        if y.shape[1] == 1:
            result["accuracy"] = float(
                np.mean((outs[:, 0] > self.binary_thresh) == (y[:, 0] > 0.5))
            )
        else:
            result["accuracy"] = float(np.mean(outs.argmax(1) == y.argmax(1)))
        return result

    @staticmethod
    def _raw_run(model: nn.Sequential, row: np.ndarray) -> np.ndarray:
        p = next(model.parameters())
        with no_grad():
            return model(gnn.tensor(row[None, :], dtype=p.dtype, device=p.device)).numpy()[0]

    # ---- JSON -----------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """What rebuilds the network: sizes, weights (a row per node), biases, lookups."""
        model = self.model
        if model is None:
            raise RuntimeError("NeuralNetwork.to_json: the network is not trained yet")
        layers = [
            {"weights": m.weight.numpy().tolist(), "biases": m.bias.numpy().tolist()}
            for m in model
            if isinstance(m, nn.Linear)
        ]
        return {
            "type": "NeuralNetwork",
            "sizes": list(self.sizes),
            "layers": layers,
            "inputLookup": self.input_lookup,
            "outputLookup": self.output_lookup,
            "options": {"hiddenLayers": self.sizes[1:-1], "binaryThresh": self.binary_thresh},
            "trainOpts": {
                "activation": self.activation,
                "learningRate": self.learning_rate,
                "momentum": self.momentum,
                "leakyReluAlpha": self.leaky_relu_alpha,
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | str, device: Any = None) -> NeuralNetwork:
        """Rebuild a network from to_json()'s dict (or its JSON text)."""
        who = "NeuralNetwork.from_json"
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except ValueError as exc:
                raise ValueError(f"{who}: the text is not valid JSON ({exc})") from None
        if not isinstance(data, Mapping):
            raise ValueError(f"{who}: expected to_json()'s dict, got {type(data).__name__}")
        missing = [k for k in ("sizes", "layers") if k not in data]
        if missing:
            raise ValueError(
                f"{who}: not a NeuralNetwork JSON (missing {', '.join(map(repr, missing))})"
            )
        sizes, layers, opts = data["sizes"], data["layers"], data.get("trainOpts") or {}
        if (
            not isinstance(sizes, list)
            or len(sizes) < 2
            or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in sizes)
        ):
            raise ValueError(
                f"{who}: 'sizes' must be a list of at least 2 positive integers, got {sizes!r}"
            )
        if not isinstance(layers, list) or not isinstance(opts, Mapping):
            raise ValueError(f"{who}: 'layers' must be a list and 'trainOpts' an object")
        for i, layer in enumerate(layers):
            lacks = [
                k for k in ("weights", "biases") if not isinstance(layer, Mapping) or k not in layer
            ]
            if lacks:
                raise ValueError(
                    f"{who}: layer {i + 1} is missing {' and '.join(map(repr, lacks))} "
                    "(each layer needs 'weights' and 'biases')"
                )
        if len(layers) != len(sizes) - 1:
            raise ValueError(
                f"NeuralNetwork.from_json: {len(sizes)} sizes need {len(sizes) - 1} "
                f"layers, got {len(layers)}"
            )
        net = cls(
            hidden_layers=sizes[1:-1],
            activation=opts.get("activation", "sigmoid"),
            learning_rate=opts.get("learningRate", 0.3),
            momentum=opts.get("momentum", 0.1),
            binary_thresh=(data.get("options") or {}).get("binaryThresh", 0.5),
            leaky_relu_alpha=opts.get("leakyReluAlpha", 0.01),
            device=device,
        )
        linears = [m for m in net._initialize(list(sizes)) if isinstance(m, nn.Linear)]
        for i, (lin, layer) in enumerate(zip(linears, layers)):
            try:
                w = np.asarray(layer["weights"], dtype=np.float64)
                b = np.asarray(layer["biases"], dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise ValueError(
                    f"{who}: layer {i + 1}: weights and biases must be lists of numbers ({exc})"
                ) from None
            if w.shape != tuple(lin.weight.shape) or b.shape != tuple(lin.bias.shape):
                raise ValueError(
                    f"NeuralNetwork.from_json: layer {i + 1} has weights {w.shape} and "
                    f"biases {b.shape}; sizes {sizes} need {lin.weight.shape} and "
                    f"{lin.bias.shape}"
                )
            with no_grad():
                lin.weight.copy_(w)
                lin.bias.copy_(b)
        net.input_lookup = data.get("inputLookup")
        net.output_lookup = data.get("outputLookup")
        return net
