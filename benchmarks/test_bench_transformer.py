"""GPT training steps and generation: gnn next to PyTorch (same weights, same thread count).

Workloads (issue 5):
- CPU: a small char GPT step (4 layers, d_model 256, 8 heads, context 128, batch 8, vocab 65),
  forward + backward + AdamW; target gnn <= 1.5x PyTorch.
- GPU (gpu-marked): a GPT-2-small step (12 layers, 768, 12 heads, context 512, batch 8,
  vocab 50257, float32).
- Generation tokens/s with and without the key/value cache (gnn; the cache-less run is the
  baseline of its group).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import gnn
from gnn.models import GPT, GPTConfig

SMALL = GPTConfig(vocab_size=65, block_size=128, n_layer=4, n_head=8, n_embd=256)
GPT2 = GPTConfig(vocab_size=50257, block_size=512, n_layer=12, n_head=12, n_embd=768)
THREADS = int(os.environ.get("GNN_BENCH_THREADS", os.cpu_count() or 1))


def _torch():
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(THREADS)
    return torch


def torch_gpt(torch, cfg: GPTConfig):
    """The same architecture in PyTorch, with nanoGPT's parameter names (so state dicts match)."""
    nn, F = torch.nn, torch.nn.functional

    class Attn(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            C = cfg.n_embd
            self.c_attn = nn.Linear(C, 3 * C, bias=cfg.bias)
            self.c_proj = nn.Linear(C, C, bias=cfg.bias)

        def forward(self, x):
            B, T, C = x.shape
            q, k, v = self.c_attn(x).split(C, dim=2)
            q, k, v = (t.view(B, T, cfg.n_head, C // cfg.n_head).transpose(1, 2) for t in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))

    class MLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            C = cfg.n_embd
            self.c_fc = nn.Linear(C, 4 * C, bias=cfg.bias)
            self.gelu = nn.GELU(approximate="tanh")
            self.c_proj = nn.Linear(4 * C, C, bias=cfg.bias)

        def forward(self, x):
            return self.c_proj(self.gelu(self.c_fc(x)))

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ln_1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
            self.attn = Attn()
            self.ln_2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
            self.mlp = MLP()

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class TorchGPT(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            C = cfg.n_embd
            self.transformer = nn.ModuleDict(
                {
                    "wte": nn.Embedding(cfg.vocab_size, C),
                    "wpe": nn.Embedding(cfg.block_size, C),
                    "h": nn.ModuleList([Block() for _ in range(cfg.n_layer)]),
                    "ln_f": nn.LayerNorm(C, bias=cfg.bias),
                }
            )
            self.lm_head = nn.Linear(C, cfg.vocab_size, bias=False)
            self.lm_head.weight = self.transformer["wte"].weight

        def forward(self, idx, targets):
            B, T = idx.shape
            tr = self.transformer
            x = tr["wte"](idx) + tr["wpe"](torch.arange(T, device=idx.device))
            for b in tr["h"]:
                x = b(x)
            logits = self.lm_head(tr["ln_f"](x))
            return F.cross_entropy(logits.view(B * T, -1), targets.view(B * T))

    return TorchGPT()


def _adamw(model):
    from gnn.examples.text import make_optimizer

    return make_optimizer(model, 1e-4, 0.1)


def _batch(cfg: GPTConfig, batch: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    shape = (batch, cfg.block_size)
    return rng.integers(0, cfg.vocab_size, shape), rng.integers(0, cfg.vocab_size, shape)


def cuda_kernel_launches(fn) -> int | None:
    """Kernels fn() launches on the GPU, counted by CUPTI through torch.profiler (None: unknown).

    CUPTI records kernel activity for the whole process, so it sees CuPy's launches as well as
    PyTorch's; a probe launch of one CuPy kernel checks that, and gives None when it is not seen.
    """
    try:
        import torch
        from torch.autograd import DeviceType
        from torch.profiler import ProfilerActivity, profile
    except ImportError:
        return None

    def count(run) -> int:
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            run()
            torch.cuda.synchronize()
        events = prof.profiler.kineto_results.events()
        return sum(
            1
            for e in events
            if e.device_type() == DeviceType.CUDA and not e.name().startswith(("Memcpy", "Memset"))
        )

    try:
        import cupy

        probe = cupy.ones(16, dtype=cupy.float32)
        if count(lambda: cupy.multiply(probe, 2.0)) < 1:
            return None
        return count(fn)
    except Exception:
        return None


def _no_tf32(torch) -> None:
    """float32 matmuls in full float32 on both sides (CuPy uses TF32 only with CUPY_TF32=1)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def _bench_step(benchmark, cfg: GPTConfig, device: str, role: str | None) -> None:
    gnn.manual_seed(0)
    model = GPT(cfg).to(device)
    opt = _adamw(model)
    x, y = (gnn.tensor(a, device=device) for a in _batch(cfg, 8))
    be = model.lm_head.weight._be

    def step() -> None:
        opt.zero_grad()
        _, loss = model(x, y)
        loss.backward()
        opt.step()
        be.synchronize()

    step()
    if device == "cpu":
        benchmark.extra_info.update({"threads": THREADS, "target": 1.5})
    else:
        torch = _torch()
        if torch is not None and torch.cuda.is_available():
            _no_tf32(torch)
        benchmark.extra_info["target"] = 1.3
        benchmark.extra_info["CUPY_TF32"] = os.environ.get("CUPY_TF32", "0")
        benchmark.extra_info["kernel_launches_per_step"] = cuda_kernel_launches(step)
    benchmark.pedantic(step, rounds=5, iterations=1, warmup_rounds=1)


def _bench_torch_step(benchmark, torch, cfg: GPTConfig, device: str) -> None:
    if device != "cpu":
        _no_tf32(torch)
    gnn.manual_seed(0)
    ref = GPT(cfg)  # the same initial weights as the gnn model
    model = torch_gpt(torch, cfg)
    model.load_state_dict({k: torch.tensor(v.numpy()) for k, v in ref.state_dict().items()})
    model.to(device)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "wpe" not in n]
    other = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "wpe" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
        lr=1e-4, betas=(0.9, 0.99), foreach=True,
    )  # fmt: skip
    x, y = (torch.tensor(a, device=device) for a in _batch(cfg, 8))

    def step() -> None:
        opt.zero_grad()
        model(x, y).backward()
        opt.step()
        if device != "cpu":
            torch.cuda.synchronize()

    step()
    benchmark.extra_info.update({"role": "baseline", "threads": THREADS})
    if device != "cpu":
        benchmark.extra_info["kernel_launches_per_step"] = cuda_kernel_launches(step)
    benchmark.pedantic(step, rounds=5, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group="gpt-small-step-cpu")
def test_gpt_small_step_gnn_cpu(benchmark):
    _bench_step(benchmark, SMALL, "cpu", None)


@pytest.mark.benchmark(group="gpt-small-step-cpu")
def test_gpt_small_step_torch_cpu(benchmark):
    torch = _torch()
    if torch is None:
        pytest.skip("PyTorch is not installed")
    _bench_torch_step(benchmark, torch, SMALL, "cpu")


@pytest.mark.gpu
@pytest.mark.benchmark(group="gpt2-small-step-gpu")
def test_gpt2_small_step_gnn_gpu(benchmark):
    if not gnn.cuda_available():
        pytest.skip("no CUDA device")
    _bench_step(benchmark, GPT2, "cuda", None)


@pytest.mark.gpu
@pytest.mark.benchmark(group="gpt2-small-step-gpu")
def test_gpt2_small_step_torch_gpu(benchmark):
    torch = _torch()
    if torch is None or not torch.cuda.is_available():
        pytest.skip("PyTorch with CUDA is not installed")
    _bench_torch_step(benchmark, torch, GPT2, "cuda")


NEW_TOKENS = 64


@pytest.mark.parametrize("use_cache", [False, True], ids=["no_cache", "kv_cache"])
@pytest.mark.benchmark(group="gpt-generate-cpu")
def test_generate_tokens_per_second(benchmark, use_cache):
    gnn.manual_seed(0)
    model = GPT(SMALL).eval()
    prompt = gnn.tensor(np.zeros((1, 16), dtype=np.int64))
    benchmark.pedantic(
        lambda: model.generate(prompt, NEW_TOKENS, use_cache=use_cache), rounds=3, iterations=1
    )
    benchmark.extra_info["tokens_per_s"] = round(NEW_TOKENS / benchmark.stats.stats.median, 1)
    if not use_cache:
        benchmark.extra_info["role"] = "baseline"
