"""XOR from scratch, PyTorch style: first with bare tensors and hand-written SGD, then with
nn.Module + optim. Run: python examples/xor_from_scratch.py  (GNN_EXAMPLES_QUICK=1: a short run)."""

import os

import gnn
from gnn import functional as F
from gnn import nn, optim

QUICK = os.environ.get("GNN_EXAMPLES_QUICK") == "1"
STEPS = 200 if QUICK else 3000

x = gnn.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
y = gnn.tensor([[0.0], [1.0], [1.0], [0.0]])

# ---- 1. bare tensors: the parameters are leaves that require grad ---------------------------
gnn.manual_seed(0)
w1 = gnn.randn(2, 4, requires_grad=True)  # (in, hidden)
b1 = gnn.zeros(4, requires_grad=True)
w2 = gnn.randn(4, 1, requires_grad=True)  # (hidden, out)
b2 = gnn.zeros(1, requires_grad=True)
lr = 1.0
for step in range(STEPS):
    hidden = (x @ w1 + b1).tanh()  # (4, 4)
    out = (hidden @ w2 + b2).sigmoid()  # (4, 1)
    loss = F.binary_cross_entropy(out, y)
    loss.backward()  # fills .grad of every leaf that requires grad
    with gnn.no_grad():  # the update itself must not be recorded
        for p in (w1, b1, w2, b2):
            p.copy_(p - lr * p.grad)  # in place: p stays the same leaf tensor
            p.grad = None
    if step % (STEPS // 5) == 0:
        print(f"bare tensors  step {step:5d}  loss {loss.item():.4f}")
print("bare tensors: outputs", [round(float(v), 3) for v in out.detach().numpy().ravel()])

# ---- 2. the same with nn.Module and an optimizer --------------------------------------------


class XorNet(nn.Module):
    """2 -> 4 (tanh) -> 1 (the output is a logit; the loss applies the sigmoid)."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(2, 4)
        self.out = nn.Linear(4, 1)

    def forward(self, x: gnn.Tensor) -> gnn.Tensor:
        return self.out(self.hidden(x).tanh())


gnn.manual_seed(0)
model = XorNet()
opt = optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
for _ in range(STEPS):
    opt.zero_grad()
    loss = F.binary_cross_entropy_with_logits(model(x), y)
    loss.backward()
    opt.step()
with gnn.no_grad():
    prob = model(x).sigmoid()
accuracy = ((prob > 0.5).float() == y).float().mean().item()
print(f"nn.Module: loss {loss.item():.4f}, accuracy {accuracy:.0%}")
print("state_dict keys:", list(model.state_dict()))
