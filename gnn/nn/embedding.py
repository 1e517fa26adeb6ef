"""Embedding: a lookup table of learned vectors indexed by integer ids."""

from __future__ import annotations

from typing import Any

from gnn import config, creation
from gnn import functional as F
from gnn.config import no_grad
from gnn.nn import init
from gnn.nn.linear import check_positive
from gnn.nn.module import Module
from gnn.nn.parameter import Parameter
from gnn.tensor import Tensor


class Embedding(Module):
    """weight (num_embeddings, embedding_dim) ~ N(0, 1); the padding_idx row is zero, stays so."""

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        max_norm: float | None = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        check_positive("Embedding", num_embeddings=num_embeddings, embedding_dim=embedding_dim)
        if max_norm is not None:
            raise NotImplementedError("Embedding: max_norm is not supported")
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(
                    f"Embedding: padding_idx {padding_idx} is out of range for num_embeddings="
                    f"{num_embeddings} (valid: {-num_embeddings}..{num_embeddings - 1})"
                )
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = padding_idx
        dtype = dtype or config.get_default_dtype()
        self.weight = Parameter(creation.empty((num_embeddings, embedding_dim), dtype, device))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """N(0, 1), with the padding row zeroed (as PyTorch)."""
        init.normal_(self.weight)
        if self.padding_idx is not None:
            with no_grad():
                self.weight.array[self.padding_idx] = 0

    @classmethod
    def from_pretrained(
        cls, embeddings: Any, freeze: bool = True, padding_idx: int | None = None
    ) -> Embedding:
        """An Embedding holding the given (num, dim) matrix (frozen unless freeze=False)."""
        weight = embeddings if isinstance(embeddings, Tensor) else Tensor(embeddings)
        if weight.ndim != 2:
            raise ValueError(
                f"Embedding.from_pretrained: expected a 2-D matrix, got {weight.shape}"
            )
        emb = cls(
            weight.shape[0], weight.shape[1], padding_idx, device=weight.device, dtype=weight.dtype
        )
        emb.weight.array[...] = weight.array
        emb.weight.requires_grad = not freeze
        return emb

    def forward(self, ids: Any) -> Tensor:
        return F.embedding(ids, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        pad = f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"
