"""gnn.nn: Module, Parameter and the layers, with PyTorch's names, arguments and key names."""

from gnn.nn import init
from gnn.nn.activation import GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from gnn.nn.container import ModuleDict, ModuleList, Sequential
from gnn.nn.linear import Identity, Linear
from gnn.nn.loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss
from gnn.nn.module import Module
from gnn.nn.parameter import Parameter

__all__ = [
    "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "GELU", "Identity", "L1Loss",
    "LeakyReLU", "Linear", "LogSoftmax", "MSELoss", "Module", "ModuleDict", "ModuleList",
    "NLLLoss", "Parameter", "ReLU", "Sequential", "Sigmoid", "Softmax", "Tanh", "init",
]  # fmt: skip
