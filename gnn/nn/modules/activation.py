"""torch.nn.modules.activation: the same classes as gnn.nn."""

from __future__ import annotations

from gnn.nn.activation import GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from gnn.nn.attention import MultiheadAttention

__all__ = [
    "GELU",
    "LeakyReLU",
    "LogSoftmax",
    "MultiheadAttention",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
]
