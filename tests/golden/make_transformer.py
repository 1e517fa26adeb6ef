"""Write tests/golden/transformer.npz: PyTorch outputs and gradients for the attention stack.

Run with PyTorch installed (never needed by the test suite): python tests/golden/make_transformer.py
Everything is float64 with dropout 0, so gnn must match to ~1e-10. Each case stores its inputs,
the module's state dict (PyTorch key names), the output, a fixed output gradient `gy`, and the
gradients of the inputs and parameters for sum(output * gy).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

OUT = Path(__file__).with_name("transformer.npz")
torch.set_default_dtype(torch.float64)
torch.manual_seed(0)
rng = np.random.default_rng(0)
store: dict[str, np.ndarray] = {}


def t(*shape: int, grad: bool = True) -> torch.Tensor:
    return torch.tensor(rng.standard_normal(shape), requires_grad=grad)


def save(case: str, out: torch.Tensor, inputs: dict, module: nn.Module | None = None) -> None:
    """Backward from sum(out * gy), then store inputs, state dict, output and gradients."""
    gy = torch.tensor(rng.standard_normal(out.shape))
    (out * gy).sum().backward()
    store[f"{case}/out"] = out.detach().numpy()
    store[f"{case}/gy"] = gy.numpy()
    for name, x in inputs.items():
        store[f"{case}/in/{name}"] = x.detach().numpy()
        if isinstance(x, torch.Tensor) and x.requires_grad:
            store[f"{case}/grad_in/{name}"] = x.grad.numpy()
    if module is not None:
        for name, p in module.state_dict().items():
            store[f"{case}/state/{name}"] = p.numpy()
        for name, p in module.named_parameters():
            store[f"{case}/grad/{name}"] = p.grad.numpy()


def sdpa_cases() -> None:
    B, H, L, S, E, Ev = 2, 3, 4, 5, 8, 6
    masks = {
        "none": None,
        "bool": torch.tensor(rng.random((L, S)) > 0.3),
        "bool_per_batch": torch.tensor(rng.random((B, 1, L, S)) > 0.3),
        "float": torch.tensor(rng.standard_normal((H, L, S))),
    }
    for name, mask in masks.items():
        if mask is not None and mask.dtype == torch.bool:
            mask[..., 0] = True  # no row fully masked
        q, k, v = t(B, H, L, E), t(B, H, S, E), t(B, H, S, Ev)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        inputs = {"q": q, "k": k, "v": v}
        if mask is not None:
            inputs["mask"] = mask
        save(f"sdpa_{name}", out, inputs)
    q, k, v = t(B, H, L, E), t(B, H, S, E), t(B, H, S, Ev)
    save("sdpa_causal", F.scaled_dot_product_attention(q, k, v, is_causal=True),
         {"q": q, "k": k, "v": v})  # fmt: skip
    q, k, v = t(B, H, L, E), t(1, H, S, E), t(1, H, S, Ev)  # keys shared by the batch
    save("sdpa_scale_bcast", F.scaled_dot_product_attention(q, k, v, scale=0.3),
         {"q": q, "k": k, "v": v})  # fmt: skip


def mha_cases() -> None:
    E, H, L, S, N = 8, 2, 4, 5, 3
    # self-attention, (L, N, E), bool key padding + bool causal mask, averaged weights
    m = nn.MultiheadAttention(E, H)
    x = t(L, N, E)
    kpm = torch.zeros(N, L, dtype=torch.bool)
    kpm[1, -1] = True
    kpm[2, -2:] = True
    causal = torch.triu(torch.ones(L, L, dtype=torch.bool), diagonal=1)
    out, w = m(x, x, x, key_padding_mask=kpm, attn_mask=causal)
    store["mha_self/weights"] = w.detach().numpy()
    save("mha_self", out, {"x": x, "key_padding_mask": kpm, "attn_mask": causal}, m)
    # cross-attention with kdim / vdim, batch_first, 3-D float mask, per-head weights
    m = nn.MultiheadAttention(E, H, kdim=6, vdim=7, batch_first=True)
    q, k, v = t(N, L, E), t(N, S, 6), t(N, S, 7)
    fmask = torch.tensor(rng.standard_normal((N * H, L, S)))
    out, w = m(q, k, v, attn_mask=fmask, average_attn_weights=False)
    store["mha_cross/weights"] = w.detach().numpy()
    save("mha_cross", out, {"q": q, "k": k, "v": v, "attn_mask": fmask}, m)
    # separate query / key / value tensors of one width, no bias
    m = nn.MultiheadAttention(E, H, bias=False, batch_first=True)
    q, k, v = t(N, L, E), t(N, S, E), t(N, S, E)
    out, _ = m(q, k, v, need_weights=False)
    save("mha_nobias", out, {"q": q, "k": k, "v": v}, m)


def layer_cases() -> None:
    d, H, ff, L, S, N = 8, 2, 16, 5, 6, 2
    causal = nn.Transformer.generate_square_subsequent_mask(L)
    for norm_first in (False, True):
        for act in ("relu", "gelu"):
            tag = f"{'pre' if norm_first else 'post'}_{act}"
            m = nn.TransformerEncoderLayer(d, H, ff, dropout=0.0, activation=act,
                                           norm_first=norm_first, batch_first=True)  # fmt: skip
            x = t(N, L, d)
            kpm = torch.zeros(N, L, dtype=torch.bool)
            kpm[1, -1] = True
            out = m(x, src_mask=causal, src_key_padding_mask=kpm)
            save(f"enc_{tag}", out, {"x": x, "src_mask": causal, "kpm": kpm}, m)
        m = nn.TransformerDecoderLayer(d, H, ff, dropout=0.0, norm_first=norm_first)
        tgt, mem = t(L, N, d), t(S, N, d)
        mkpm = torch.zeros(N, S, dtype=torch.bool)
        mkpm[0, -2:] = True
        out = m(tgt, mem, tgt_mask=causal, memory_key_padding_mask=mkpm)
        tag = "pre" if norm_first else "post"
        save(f"dec_{tag}", out, {"tgt": tgt, "memory": mem, "tgt_mask": causal, "mkpm": mkpm}, m)


def transformer_case() -> None:
    d, H, ff, L, S, N = 8, 2, 16, 4, 6, 2
    m = nn.Transformer(d, H, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=ff,
                       dropout=0.0, batch_first=True)  # fmt: skip
    src, tgt = t(N, S, d), t(N, L, d)
    skpm = torch.zeros(N, S, dtype=torch.bool)
    skpm[1, -2:] = True
    tgt_mask = nn.Transformer.generate_square_subsequent_mask(L)
    out = m(src, tgt, tgt_mask=tgt_mask, src_key_padding_mask=skpm, memory_key_padding_mask=skpm)
    save("transformer", out, {"src": src, "tgt": tgt, "tgt_mask": tgt_mask, "skpm": skpm}, m)


def basic_cases() -> None:
    m = nn.LayerNorm((3, 5))
    with torch.no_grad():
        m.weight.copy_(torch.tensor(rng.standard_normal((3, 5))))
        m.bias.copy_(torch.tensor(rng.standard_normal((3, 5))))
    x = t(4, 3, 5)
    save("layernorm", m(x), {"x": x}, m)
    m = nn.LayerNorm(6, elementwise_affine=False, eps=1e-3)
    x = t(2, 4, 6)
    save("layernorm_plain", m(x), {"x": x})
    m = nn.Embedding(7, 4, padding_idx=2)
    ids = torch.tensor([[1, 2, 1, 6], [0, 2, 5, 1]])
    save("embedding", m(ids), {"ids": ids}, m)


if __name__ == "__main__":
    sdpa_cases()
    mha_cases()
    layer_cases()
    transformer_case()
    basic_cases()
    np.savez_compressed(OUT, **store, torch_version=np.array(torch.__version__))
    print(f"wrote {len(store)} arrays to {OUT} ({OUT.stat().st_size / 1024:.0f} KiB)")
