"""The brain.js face: gnn.NeuralNetwork on XOR, on named (dict) inputs, and saved as JSON.

Run: python examples/neuralnetwork_xor.py  (GNN_EXAMPLES_QUICK=1: a short run)"""

import json
import os

import gnn

QUICK = os.environ.get("GNN_EXAMPLES_QUICK") == "1"
ITERATIONS = 200 if QUICK else 20000

gnn.manual_seed(1)
net = gnn.NeuralNetwork(hidden_layers=[3])  # sigmoid everywhere, learning rate 0.3, momentum 0.1
result = net.train(
    [
        {"input": [0, 0], "output": [0]},
        {"input": [0, 1], "output": [1]},
        {"input": [1, 0], "output": [1]},
        {"input": [1, 1], "output": [0]},
    ],
    iterations=ITERATIONS,
    log=True,
    log_period=1000,
)
print("train:", result)
for a in (0, 1):
    for b in (0, 1):
        print(f"{a} xor {b} -> {net.run([a, b])[0]:.3f}")

# Named inputs and outputs, as brain.js allows: which text colour reads best on a background?
colours = [
    {"input": {"r": 0.03, "g": 0.7, "b": 0.5}, "output": {"black": 1}},
    {"input": {"r": 0.16, "g": 0.09, "b": 0.2}, "output": {"white": 1}},
    {"input": {"r": 0.5, "g": 0.5, "b": 1.0}, "output": {"white": 1}},
    {"input": {"r": 0.9, "g": 0.9, "b": 0.8}, "output": {"black": 1}},
]
gnn.manual_seed(0)
contrast = gnn.NeuralNetwork(activation="tanh")
print("colours:", contrast.train(colours, iterations=ITERATIONS))
print(
    "dark blue background ->",
    {k: round(v, 3) for k, v in contrast.run({"r": 0.1, "g": 0.1, "b": 0.4}).items()},
)

# to_json / from_json: the whole network as plain JSON.
text = json.dumps(net.to_json())
again = gnn.NeuralNetwork.from_json(text)
print(f"JSON: {len(text)} characters; reloaded 1 xor 0 -> {again.run([1, 0])[0]:.3f}")
