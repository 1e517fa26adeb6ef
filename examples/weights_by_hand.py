"""Weights and biases inspected and changed by hand: an XOR network that is never trained.

Hidden unit 1 computes OR, hidden unit 2 computes NAND, the output ANDs them: OR and NAND is XOR.
Run: python examples/weights_by_hand.py"""

import numpy as np

import gnn
from gnn import nn

model = nn.Sequential(nn.Linear(2, 2), nn.Sigmoid(), nn.Linear(2, 1), nn.Sigmoid())

# Inspect: parameters have PyTorch's names and layout, weight (out_features, in_features).
for name, p in model.named_parameters():
    print(f"{name:10s} shape {p.shape}  values {np.round(p.numpy().astype(float), 3).tolist()}")

# Change by hand. Big weights make the sigmoids act like steps. Parameters require grad, so
# writing into them happens under no_grad (or through .data).
with gnn.no_grad():
    model[0].weight.copy_([[20.0, 20.0], [-20.0, -20.0]])  # row 0: OR, row 1: NAND
    model[0].bias.copy_([-10.0, 30.0])
    model[2].weight.copy_([[20.0, 20.0]])  # AND of the two hidden units
    model[2].bias.fill_(-30.0)

x = gnn.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
with gnn.no_grad():
    hidden = model[1](model[0](x))
    out = model(x)
for inp, h, o in zip(x.numpy(), hidden.numpy(), out.numpy()):
    print(
        f"{inp.astype(int).tolist()} -> hidden (OR {h[0]:.3f}, NAND {h[1]:.3f}) -> XOR {o[0]:.3f}"
    )
assert np.array_equal(out.numpy().round().ravel(), [0, 1, 1, 0])

# A state dict is a plain mapping: edit it and load it back (here: turn XOR into XNOR).
state = model.state_dict()
state["2.weight"] = -state["2.weight"].numpy()
state["2.bias"] = np.array([30.0], dtype=np.float32)  # fires unless both are on: XNOR
model.load_state_dict(state)
with gnn.no_grad():
    xnor = model(x).numpy().ravel()
print("after editing the state dict (XNOR):", [round(float(v), 3) for v in xnor])
assert np.array_equal(xnor.round(), [1, 0, 0, 1])
