"""Handwritten digits, PyTorch style: Dataset, DataLoader, a Module, an optimizer and the loop.

Run: python examples/digits_pytorch.py  (GNN_EXAMPLES_QUICK=1: a short run)"""

import os

import numpy as np

import gnn
from gnn import functional as F
from gnn import nn, optim
from gnn.data import DataLoader, TensorDataset

QUICK = os.environ.get("GNN_EXAMPLES_QUICK") == "1"
EPOCHS = 1 if QUICK else 20

digits = gnn.datasets.digits()  # x: 8x8 images as float32, y: int64 labels 0..9
x = digits.x.reshape(len(digits.x), -1).astype(np.float32)
x = x / x.max()
x_train, x_test, y_train, y_test = gnn.datasets.train_test_split(
    x, digits.y, test_fraction=0.2, seed=0, stratify=True
)

gnn.manual_seed(0)
model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))  # logits
opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
loader = DataLoader(TensorDataset(x_train, y_train), batch_size=32, shuffle=True)
test_x, test_y = gnn.tensor(x_test), gnn.tensor(y_test)


def test_accuracy() -> float:
    model.eval()
    with gnn.no_grad():
        predicted = model(test_x).argmax(dim=1)
    model.train()
    return (predicted == test_y).float().mean().item()


for epoch in range(EPOCHS):
    total = 0.0
    for xb, yb in loader:  # xb (32, 64) float32, yb (32,) int64
        opt.zero_grad()
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        total += loss.item() * len(xb)
    mean_loss = total / len(x_train)
    print(f"epoch {epoch + 1:2d}  loss {mean_loss:.4f}  test accuracy {test_accuracy():.3f}")
print(f"test accuracy {test_accuracy():.3f} on {len(x_test)} images")
