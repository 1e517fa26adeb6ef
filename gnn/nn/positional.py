"""Position information for sequence models: fixed sinusoids and learned position embeddings."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gnn import config, creation
from gnn import functional as F
from gnn.nn import init
from gnn.nn.dropout import check_dropout
from gnn.nn.linear import check_positive
from gnn.nn.module import Module
from gnn.nn.parameter import Parameter
from gnn.tensor import Tensor


def sinusoidal_table(max_len: int, d_model: int) -> np.ndarray:
    """The (max_len, d_model) table of "Attention Is All You Need": sin on even, cos on odd dims."""
    pos = np.arange(max_len, dtype=np.float64)[:, None]
    freq = np.exp(np.arange(0, d_model, 2, dtype=np.float64) * (-math.log(10000.0) / d_model))
    table = np.zeros((max_len, d_model), dtype=np.float64)
    table[:, 0::2] = np.sin(pos * freq)
    table[:, 1::2] = np.cos(pos * freq[: d_model // 2])
    return table


class PositionalEncoding(Module):
    """x + sinusoidal position codes, then dropout; x is (T, N, E), or (N, T, E) with batch_first.

    The table is a non-persistent buffer: it is recomputed, not saved in the state dict.
    """

    def __init__(
        self,
        d_model: int,
        dropout: float = 0.1,
        max_len: int = 5000,
        batch_first: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        check_positive("PositionalEncoding", d_model=d_model, max_len=max_len)
        self.d_model, self.max_len, self.batch_first = d_model, max_len, batch_first
        self.dropout = check_dropout("PositionalEncoding", dropout)
        dtype = dtype or config.get_default_dtype()
        table = Tensor(sinusoidal_table(max_len, d_model), dtype=dtype, device=device)
        self.register_buffer("pe", table, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        t_dim = 1 if self.batch_first else 0
        if x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ValueError(
                f"PositionalEncoding(d_model={self.d_model}): expected a 3-D input with "
                f"{self.d_model} features last, got shape {x.shape}"
            )
        T = x.shape[t_dim]
        if T > self.max_len:
            raise ValueError(
                f"PositionalEncoding: sequence length {T} is longer than max_len {self.max_len}"
            )
        pe = self.pe[:T]  # (T, E)
        pe = pe.unsqueeze(0) if self.batch_first else pe.unsqueeze(1)
        return F.dropout(x + pe.to(x.dtype), self.dropout, self.training)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, max_len={self.max_len}, dropout={self.dropout}"


class LearnedPositionalEmbedding(Module):
    """x + weight[:T] with a trained (max_len, d_model) table (~N(0, 0.02^2)), then dropout."""

    def __init__(
        self,
        max_len: int,
        d_model: int,
        dropout: float = 0.0,
        batch_first: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        check_positive("LearnedPositionalEmbedding", max_len=max_len, d_model=d_model)
        self.max_len, self.d_model, self.batch_first = max_len, d_model, batch_first
        self.dropout = check_dropout("LearnedPositionalEmbedding", dropout)
        dtype = dtype or config.get_default_dtype()
        self.weight = Parameter(creation.empty((max_len, d_model), dtype, device))
        init.normal_(self.weight, 0.0, 0.02)

    def forward(self, x: Tensor) -> Tensor:
        t_dim = 1 if self.batch_first else 0
        if x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ValueError(
                f"LearnedPositionalEmbedding(d_model={self.d_model}): expected a 3-D input with "
                f"{self.d_model} features last, got shape {x.shape}"
            )
        T = x.shape[t_dim]
        if T > self.max_len:
            raise ValueError(
                f"LearnedPositionalEmbedding: sequence length {T} is longer than max_len "
                f"{self.max_len}"
            )
        pos = self.weight[:T]  # (T, E)
        pos = pos.unsqueeze(0) if self.batch_first else pos.unsqueeze(1)
        return F.dropout(x + pos, self.dropout, self.training)

    def extra_repr(self) -> str:
        return f"max_len={self.max_len}, d_model={self.d_model}, dropout={self.dropout}"
