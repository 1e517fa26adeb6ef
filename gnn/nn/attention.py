"""MultiheadAttention with PyTorch's arguments, masks, parameter names and initialisation."""

from __future__ import annotations

from typing import Any

import numpy as np

from gnn import config, creation
from gnn import functional as F
from gnn.nn import init
from gnn.nn.dropout import check_dropout
from gnn.nn.linear import Linear, check_positive
from gnn.nn.module import Module
from gnn.nn.parameter import Parameter
from gnn.ops.attention import attention, causal_mask, to_additive
from gnn.tensor import Tensor


class MultiheadAttention(Module):
    """Attention over num_heads subspaces of embed_dim: out_proj(concat_h softmax(q k^T/√d) v).

    Parameters as PyTorch names them: in_proj_weight (3E, E) and in_proj_bias (3E) when keys and
    values have embed_dim features, else q_proj_weight / k_proj_weight / v_proj_weight; out_proj.
    Masks: key_padding_mask (N, S) and a boolean attn_mask mark what to IGNORE with True (the
    opposite of F.scaled_dot_product_attention); float masks are added to the scores.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        check_positive("MultiheadAttention", embed_dim=embed_dim, num_heads=num_heads)
        if embed_dim % num_heads:
            raise ValueError(
                f"MultiheadAttention: embed_dim {embed_dim} must be divisible by num_heads "
                f"{num_heads}"
            )
        if add_bias_kv or add_zero_attn:
            raise NotImplementedError("MultiheadAttention: add_bias_kv / add_zero_attn")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.kdim = embed_dim if kdim is None else kdim
        self.vdim = embed_dim if vdim is None else vdim
        check_positive("MultiheadAttention", kdim=self.kdim, vdim=self.vdim)
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.dropout = check_dropout("MultiheadAttention", dropout)
        self.batch_first = batch_first
        dtype = dtype or config.get_default_dtype()
        E = embed_dim

        def param(*shape: int) -> Parameter:
            return Parameter(creation.empty(shape, dtype, device))

        if self._qkv_same_embed_dim:
            self.in_proj_weight = param(3 * E, E)
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        else:
            self.q_proj_weight = param(E, E)
            self.k_proj_weight = param(E, self.kdim)
            self.v_proj_weight = param(E, self.vdim)
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = param(3 * E)
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(E, E, bias=bias, device=device, dtype=dtype)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        """PyTorch's init: Xavier-uniform projections, zero biases."""
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            init.xavier_uniform_(self.q_proj_weight)
            init.xavier_uniform_(self.k_proj_weight)
            init.xavier_uniform_(self.v_proj_weight)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)

    def _projections(self, query: Tensor, key: Tensor, value: Tensor) -> tuple:
        E = self.embed_dim
        b = self.in_proj_bias
        bq, bk, bv = (None, None, None) if b is None else (b[:E], b[E : 2 * E], b[2 * E :])
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight
            wq, wk, wv = w[:E], w[E : 2 * E], w[2 * E :]
        else:
            wq, wk, wv = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        return F.linear(query, wq, bq), F.linear(key, wk, bk), F.linear(value, wv, bv)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Any = None,
        need_weights: bool = True,
        attn_mask: Any = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """(attn_output, attn_weights or None); inputs (L, N, E), or (N, L, E) with batch_first."""
        name = "MultiheadAttention"
        unbatched = query.ndim == 2
        same = query is key and key is value
        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
            raise ValueError(
                f"{name}: query, key and value must all be 2-D (unbatched) or 3-D, got "
                f"{query.shape}, {key.shape}, {value.shape}"
            )
        if unbatched:
            query = query.unsqueeze(0)
            key, value = (query, query) if same else (key.unsqueeze(0), value.unsqueeze(0))
            if key_padding_mask is not None:
                key_padding_mask = _unsqueeze_mask(key_padding_mask)
        elif not self.batch_first:
            query = query.transpose(0, 1)
            key, value = (query, query) if same else (key.transpose(0, 1), value.transpose(0, 1))
        N, L, E = query.shape
        S = key.shape[1]
        if E != self.embed_dim:
            raise ValueError(f"{name}: expected query with {self.embed_dim} features, got {E}")
        if key.shape[-1] != self.kdim or value.shape[-1] != self.vdim:
            raise ValueError(
                f"{name}: expected key / value with {self.kdim} / {self.vdim} features, got "
                f"{key.shape[-1]} / {value.shape[-1]}"
            )
        if key.shape[:2] != value.shape[:2] or key.shape[0] != N:
            raise ValueError(
                f"{name}: batch / sequence sizes differ: query {query.shape}, key {key.shape}, "
                f"value {value.shape} (as (N, L, E))"
            )
        H, hd = self.num_heads, self.head_dim
        # causal alone: the attention op's own (cached) mask, which its fused kernels know
        causal = is_causal and attn_mask is None and key_padding_mask is None
        mask = None
        if not causal:
            mask = self._merged_mask(key_padding_mask, attn_mask, is_causal, N, L, S, query)

        if self._qkv_same_embed_dim and query is key and key is value:
            # self-attention: one product, split by a view; attention takes the packed projection
            # and writes its three gradients into one buffer
            qkv = F.linear(query, self.in_proj_weight, self.in_proj_bias)  # (N, L, 3E)
            qkv = qkv.reshape(N, L, 3, H, hd).permute(2, 0, 3, 1, 4)  # (3, N, H, L, hd)
            q, k, v = qkv[0], qkv[1], qkv[2]
        else:
            q, k, v = self._projections(query, key, value)
            q = q.reshape(N, L, H, hd).transpose(1, 2)  # (N, H, L, hd)
            k = k.reshape(N, S, H, hd).transpose(1, 2)  # (N, H, S, hd)
            v = v.reshape(N, S, H, hd).transpose(1, 2)  # (N, H, S, hd)
        p = self.dropout if self.training else 0.0
        out, weights = attention(q, k, v, mask, p, need_weights=need_weights, causal=causal)
        out = out.transpose(1, 2).reshape(N, L, E)  # (N, L, E)
        out = self.out_proj(out)
        if unbatched:
            out = out.squeeze(0)
        elif not self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        be = query.backend
        w = weights.mean(axis=1) if average_attn_weights else weights  # (N, [H,] L, S)
        w = w.astype(query.dtype, copy=False)
        w_t = Tensor.wrap(w[0] if unbatched else w, be)
        return out, w_t

    def _merged_mask(
        self,
        key_padding_mask: Any,
        attn_mask: Any,
        is_causal: bool,
        N: int,
        L: int,
        S: int,
        like: Tensor,
    ) -> Any:
        """One additive float mask broadcastable to (N, H, L, S), or None."""
        name = "MultiheadAttention"
        acc = np.float64 if like.dtype == np.float64 else np.float32
        total = None
        if attn_mask is not None:
            m = _additive(attn_mask, like, "attn_mask", acc)
            if m.ndim == 2:
                if m.shape != (L, S):
                    raise ValueError(
                        f"{name}: 2-D attn_mask must be (L, S) = {(L, S)}, got {tuple(m.shape)}"
                    )
            elif m.ndim == 3:
                if m.shape != (N * self.num_heads, L, S):
                    raise ValueError(
                        f"{name}: 3-D attn_mask must be (N * num_heads, L, S) = "
                        f"{(N * self.num_heads, L, S)}, got {tuple(m.shape)}"
                    )
                m = m.reshape(N, self.num_heads, L, S)
            else:
                raise ValueError(f"{name}: attn_mask must be 2-D or 3-D, got {tuple(m.shape)}")
            total = m
        elif is_causal:
            # A hint in PyTorch that needs attn_mask; here it also stands alone.
            total = causal_mask(like.backend, L, S, acc)  # shared: read-only
        if key_padding_mask is not None:
            m = _additive(key_padding_mask, like, "key_padding_mask", acc)
            if m.shape != (N, S):
                raise ValueError(
                    f"{name}: key_padding_mask must be (N, S) = {(N, S)}, got {tuple(m.shape)}"
                )
            m = m.reshape(N, 1, 1, S)
            total = m if total is None else total + m
        return total

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}"


def _unsqueeze_mask(mask: Any) -> Any:
    return mask.unsqueeze(0) if isinstance(mask, Tensor) else np.asarray(mask)[None]


def _additive(mask: Any, like: Tensor, what: str, acc: Any) -> Any:
    """A MultiheadAttention mask as an additive array: bool True (masked out) -> -inf."""
    return to_additive(mask, like, acc, f"MultiheadAttention: {what}", False)
