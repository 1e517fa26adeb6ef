"""Embedding lookup: rows of a weight matrix picked by integer ids (gradients scatter-add back)."""

from __future__ import annotations

from typing import Any

from gnn.ops._util import Configured
from gnn.ops.registry import register
from gnn.tensor import Tensor


class Embedding(Configured):
    """weight[ids]; backward adds each output row's gradient into its id's row (repeats add up)."""

    ids: Any  # an integer array on the weight's device, checked against its rows
    padding_idx: int | None  # in [0, rows) when given

    def forward(self, weight: Any) -> Any:
        self.shape = weight.shape
        return weight[self.ids]

    def backward(self, gy: Any) -> Any:
        gw = self.grad_home(0, gy.dtype)  # the weight's slot in a flat gradient buffer
        if gw is None:
            gw = self.be.xp.zeros(self.shape, dtype=gy.dtype)
        else:
            gw.fill(0)
        self.be.index_add(gw, self.ids.reshape(-1), gy.reshape(-1, self.shape[1]))
        if self.padding_idx is not None:
            gw[self.padding_idx] = 0  # the padding row gets no gradient, as in PyTorch
        return gw


@register()
def embedding(
    input: Any, weight: Tensor, padding_idx: int | None = None, max_norm: float | None = None
) -> Tensor:
    """Rows of `weight` (num_embeddings, embedding_dim) for the integer ids in `input`."""
    if max_norm is not None:
        raise NotImplementedError("embedding: max_norm is not supported")
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D (num, dim), got shape {weight.shape}")
    num = weight.shape[0]
    ids = input.array if isinstance(input, Tensor) else weight._be.asarray(input)
    if isinstance(input, Tensor) and input._be is not weight._be:
        raise RuntimeError(
            f"embedding: ids are on {input.device}, weight on {weight.device}; move them first"
        )
    if ids.dtype.kind not in "iu":
        raise TypeError(f"embedding: ids must be integers, got dtype {ids.dtype}")
    # CPU: raises now; CUDA: flags on the device and raises at check_errors() (no wait here)
    weight._be.check_ids(ids, num, "embedding")
    if padding_idx is not None:
        if not -num <= padding_idx < num:
            raise ValueError(
                f"embedding: padding_idx {padding_idx} is out of range for {num} embeddings"
            )
        padding_idx %= num
    return Embedding.apply(weight, ids=ids, padding_idx=padding_idx)
