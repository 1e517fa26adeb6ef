"""gnn.nn: Module, Parameter and the layers, with PyTorch's names, arguments and key names."""

from gnn.nn import init, parallel, utils
from gnn.nn.activation import GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from gnn.nn.attention import MultiheadAttention
from gnn.nn.container import ModuleDict, ModuleList, Sequential
from gnn.nn.dropout import Dropout
from gnn.nn.embedding import Embedding
from gnn.nn.linear import Identity, Linear
from gnn.nn.loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss
from gnn.nn.module import Module
from gnn.nn.normalization import LayerNorm
from gnn.nn.parameter import Parameter
from gnn.nn.positional import LearnedPositionalEmbedding, PositionalEncoding
from gnn.nn.transformer import (
    Transformer,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
)

__all__ = [
    "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "GELU", "Identity", "L1Loss",
    "LeakyReLU", "Linear", "LogSoftmax", "MSELoss", "Module", "ModuleDict", "ModuleList",
    "NLLLoss", "Parameter", "ReLU", "Sequential", "Sigmoid", "Softmax", "Tanh", "init",
]  # fmt: skip
__all__ += [
    "Dropout", "Embedding", "LayerNorm", "LearnedPositionalEmbedding", "MultiheadAttention",
    "PositionalEncoding", "Transformer", "TransformerDecoder", "TransformerDecoderLayer",
    "TransformerEncoder", "TransformerEncoderLayer",
]  # fmt: skip
__all__ += ["parallel", "utils"]
from gnn.nn.batchnorm import BatchNorm1d, BatchNorm2d  # noqa: E402
from gnn.nn.conv import Conv2d, ConvTranspose2d  # noqa: E402
from gnn.nn.flatten import Flatten, Unflatten  # noqa: E402
from gnn.nn.parallel import SyncBatchNorm  # noqa: E402
from gnn.nn.pooling import AvgPool2d, MaxPool2d  # noqa: E402
from gnn.nn.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell  # noqa: E402

__all__ += [
    "AvgPool2d", "BatchNorm1d", "BatchNorm2d", "Conv2d", "ConvTranspose2d", "Flatten", "GRU",
    "GRUCell", "LSTM", "LSTMCell", "MaxPool2d", "RNN", "RNNCell", "SyncBatchNorm", "Unflatten",
]  # fmt: skip
from gnn.nn import functional, modules  # noqa: E402  (torch.nn.functional, torch.nn.modules)

__all__ += ["functional", "modules"]
