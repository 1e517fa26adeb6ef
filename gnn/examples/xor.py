"""XOR with the classic 2-3-1 sigmoid network, trained by plain SGD on the mean squared error."""

from __future__ import annotations

import argparse
from typing import Any

import gnn
from gnn import functional as F
from gnn import nn, optim

INPUTS = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]
TARGETS = [[0.0], [1.0], [1.0], [0.0]]


def build_model() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 3), nn.Sigmoid(), nn.Linear(3, 1), nn.Sigmoid())


def main(args: argparse.Namespace | None = None, log: Any = print) -> dict[str, float]:
    """Train on the four XOR cases; returns {"loss", "accuracy", "steps"}."""
    steps = getattr(args, "epochs", None) or 5000
    lr = getattr(args, "lr", None) or 2.0
    seed = getattr(args, "seed", None)
    device = getattr(args, "device", None)
    gnn.manual_seed(0 if seed is None else seed)
    x = gnn.tensor(INPUTS, device=device)
    y = gnn.tensor(TARGETS, device=device)
    model = build_model().to(device or gnn.get_default_device())
    opt = optim.SGD(model.parameters(), lr=lr)
    log(f"xor: 2-3-1 sigmoid network, SGD lr={lr}, {steps} steps, device {x.device}")
    for step in range(1, steps + 1):
        opt.zero_grad()
        out = model(x)
        loss = F.mse_loss(out, y)
        loss.backward()
        opt.step()
        if step % 500 == 0 or step == steps:
            acc = ((out.detach() > 0.5).float() == y).float().mean().item()
            log(f"step {step:5d}  loss {loss.item():.5f}  accuracy {acc:.0%}")
    with gnn.no_grad():
        out = model(x)
    accuracy = ((out > 0.5).float() == y).float().mean().item()
    for inp, o in zip(INPUTS, out.numpy().ravel()):
        log(f"  {int(inp[0])} xor {int(inp[1])} -> {o:.3f}")
    return {"loss": F.mse_loss(out, y).item(), "accuracy": accuracy, "steps": steps}
