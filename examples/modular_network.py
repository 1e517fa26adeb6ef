"""A modular network: two expert sub-networks combined by a gating network (a mixture of experts).

The target behaves differently on each side of zero (a sine wave left, a line right). The gate
looks at x and outputs two weights (softmax) that mix the experts' answers; trained end to end,
each expert takes one side. Run: python examples/modular_network.py (GNN_EXAMPLES_QUICK=1: short)"""

import os

import numpy as np

import gnn
from gnn import functional as F
from gnn import nn, optim
from gnn.data import DataLoader, TensorDataset

QUICK = os.environ.get("GNN_EXAMPLES_QUICK") == "1"
EPOCHS = 3 if QUICK else 150


def expert() -> nn.Module:
    return nn.Sequential(nn.Linear(1, 16), nn.Tanh(), nn.Linear(16, 1))


class Modular(nn.Module):
    """out = g0(x) * expert0(x) + g1(x) * expert1(x), with (g0, g1) = softmax(gate(x))."""

    def __init__(self) -> None:
        super().__init__()
        self.experts = nn.ModuleList([expert(), expert()])
        self.gate = nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 2))

    def forward(self, x: gnn.Tensor) -> gnn.Tensor:
        weights = self.gate(x).softmax(-1)  # (N, 2)
        answers = gnn.cat([e(x) for e in self.experts], dim=1)  # (N, 2)
        return (weights * answers).sum(1, keepdim=True)  # (N, 1)


rng = np.random.default_rng(0)
x = rng.uniform(-3, 3, size=(1000, 1)).astype(np.float32)
y = np.where(x < 0, np.sin(3 * x), 0.5 * x).astype(np.float32)

gnn.manual_seed(0)
model = Modular()
opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
for epoch in range(EPOCHS):
    total = 0.0
    for xb, yb in loader:
        opt.zero_grad()
        loss = F.mse_loss(model(xb), yb)
        loss.backward()
        opt.step()
        total += loss.item() * len(xb)
    if epoch % max(EPOCHS // 5, 1) == 0 or epoch == EPOCHS - 1:
        print(f"epoch {epoch + 1:4d}  mse {total / len(x):.4f}")

with gnn.no_grad():
    grid = gnn.tensor([[-2.0], [-1.0], [1.0], [2.0]])
    gates = model.gate(grid).softmax(-1).numpy()
for g, w in zip(grid.numpy().ravel(), gates):
    print(f"x = {g:+.1f}: gate weights expert0 {w[0]:.2f}, expert1 {w[1]:.2f}")
print(
    "parameters:",
    sum(p.numel() for p in model.parameters()),
    "in",
    [name for name, _ in model.named_children()],
)
