"""A character-level GPT on the shipped text corpus, PyTorch style: batches of token windows,
AdamW, the training loop, then sampling. Run: python examples/text_gpt.py (GNN_EXAMPLES_QUICK=1:
a few steps only). `gnn train text` is the full recipe with checkpoints."""

import math
import os

import numpy as np

import gnn
from gnn import optim
from gnn.models import GPT, CharTokenizer, GPTConfig

QUICK = os.environ.get("GNN_EXAMPLES_QUICK") == "1"
STEPS = 5 if QUICK else 600
BATCH, CONTEXT = 16, 64

text = gnn.datasets.text_corpus(max_chars=200_000)
tok = CharTokenizer.from_text(text)
data = tok.encode(text)  # int64 token ids
split = int(0.9 * len(data))
train, val = data[:split], data[split:]
rng = np.random.default_rng(0)


def batch(source: np.ndarray) -> tuple[gnn.Tensor, gnn.Tensor]:
    """BATCH random windows: inputs (B, T) and the same shifted by one (the next characters)."""
    starts = rng.integers(0, len(source) - CONTEXT - 1, size=BATCH)
    x = np.stack([source[s : s + CONTEXT] for s in starts])
    y = np.stack([source[s + 1 : s + CONTEXT + 1] for s in starts])
    return gnn.tensor(x), gnn.tensor(y)


gnn.manual_seed(0)
config = GPTConfig(vocab_size=tok.vocab_size, block_size=CONTEXT, n_layer=2, n_head=4, n_embd=64)
model = GPT(config)
opt = optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
print(
    f"{len(text):,} characters, vocabulary {tok.vocab_size}, {model.num_parameters():,} parameters"
)
print(f"a model that guesses uniformly scores log(V) = {math.log(tok.vocab_size):.3f} nats/char")
for step in range(1, STEPS + 1):
    xb, yb = batch(train)
    opt.zero_grad()
    _, loss = model(xb, yb)
    loss.backward()
    opt.step()
    if step % max(STEPS // 6, 1) == 0 or step == STEPS:
        model.eval()
        with gnn.no_grad():
            _, val_loss = model(*batch(val))
        model.train()
        print(
            f"step {step:4d}  train loss {loss.item():.3f}  validation loss {val_loss.item():.3f}"
        )

model.eval()
prompt = gnn.tensor(tok.encode("The ")[None, :])
with gnn.no_grad():
    out = model.generate(prompt, max_new_tokens=120, temperature=0.8, top_k=10)
print("sample:", tok.decode(out.numpy()[0].tolist()))
