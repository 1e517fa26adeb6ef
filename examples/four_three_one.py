"""A 4-3-1 network two ways, Keras style: with a tanh output, and with a softmax output layer.

The task: is x0 + x1 bigger than x2 + x3? tanh outputs a score in (-1, 1) (targets -1 / +1, mean
squared error). Softmax turns a layer's outputs into probabilities that sum to 1, so over a single
output it is always 1.0; the softmax version therefore has one output per class (4-3-2).
Run: python examples/four_three_one.py  (GNN_EXAMPLES_QUICK=1: a short run)"""

import os
import warnings

import numpy as np

import gnn
from gnn.layers import Dense, optimizers

QUICK = os.environ.get("GNN_EXAMPLES_QUICK") == "1"
EPOCHS = 3 if QUICK else 60

rng = np.random.default_rng(0)
x = rng.uniform(0, 1, size=(600, 4)).astype(np.float32)
label = (x[:, 0] + x[:, 1] > x[:, 2] + x[:, 3]).astype(np.int64)  # 0 or 1
x_train, x_test, y_train, y_test = x[:500], x[500:], label[:500], label[500:]

# ---- tanh output: 4 -> 3 -> 1 ---------------------------------------------------------------
gnn.manual_seed(0)
tanh_net = gnn.Sequential()
tanh_net.add(Dense(3, activation="tanh", input_shape=(4,)))
tanh_net.add(Dense(1, activation="tanh"))
tanh_net.compile(optimizer=optimizers.SGD(learning_rate=0.1), loss="mse")
tanh_net.summary()
tanh_net.fit(x_train, 2.0 * y_train - 1.0, epochs=EPOCHS, batch_size=16, verbose=0)
score = tanh_net.predict(x_test)[:, 0]
print(
    f"tanh output: test accuracy {np.mean((score > 0) == (y_test == 1)):.3f}; "
    f"first scores {[round(float(v), 3) for v in score[:4]]}"
)

# ---- softmax over one output: 4 -> 3 -> 1 always says 1.0 -----------------------------------
with warnings.catch_warnings(record=True) as caught:  # gnn warns about exactly this
    warnings.simplefilter("always")
    one = gnn.Sequential(Dense(3, activation="tanh", input_shape=(4,)), Dense(1, "softmax"))
print(f"4-3-1 with a softmax output: predictions {one.predict(x_test[:4])[:, 0].tolist()}")
print(f"  gnn warned: {caught[0].message}")

# ---- softmax output: 4 -> 3 -> 2 ------------------------------------------------------------
gnn.manual_seed(0)
softmax_net = gnn.Sequential()
softmax_net.add(Dense(3, activation="tanh", input_shape=(4,)))
softmax_net.add(Dense(2, activation="softmax"))
softmax_net.compile(
    optimizer=optimizers.SGD(learning_rate=0.1),
    loss="sparse_categorical_crossentropy",
    metrics=["accuracy"],
)
softmax_net.fit(x_train, y_train, epochs=EPOCHS, batch_size=16, verbose=0)
probs = softmax_net.predict(x_test)
print(
    f"softmax output: test accuracy {softmax_net.evaluate(x_test, y_test)['accuracy']:.3f}; "
    f"rows sum to {[round(float(v), 4) for v in probs.sum(axis=1)[:3]]}"
)
print("first probabilities:", probs[:2].astype(float).round(3).tolist())
