"""Titanic survival, Keras style: a features-32-64-1 network on the shipped passenger table.

Run: python examples/titanic_keras.py  (GNN_EXAMPLES_QUICK=1: a short run)"""

import os

import gnn
from gnn.layers import Dense
from gnn.train import EarlyStopping

QUICK = os.environ.get("GNN_EXAMPLES_QUICK") == "1"
EPOCHS = 2 if QUICK else 100

data = gnn.datasets.titanic()  # numpy arrays: x (N, features) float32, y (N, 1) 0/1
print("features:", ", ".join(data.feature_names), f"({len(data.x)} passengers)")
x_train, x_val, y_train, y_val = gnn.datasets.train_test_split(
    data.x, data.y, test_fraction=0.2, seed=0, stratify=True
)

gnn.manual_seed(0)
model = gnn.Sequential()
model.add(Dense(32, activation="relu", input_shape=(x_train.shape[1],)))
model.add(Dense(64, activation="relu"))
model.add(Dense(1, activation="sigmoid"))  # the probability of surviving
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
model.summary()

history = model.fit(
    x_train,
    y_train,
    epochs=EPOCHS,
    batch_size=32,
    validation_split=0.2,
    verbose=2,
    callbacks=[EarlyStopping(monitor="val_loss", patience=10, restore_best_weights=True)],
)
print("epochs run:", len(history.history["loss"]))
result = model.evaluate(x_val, y_val)
print(f"validation accuracy {result['accuracy']:.3f} (loss {result['loss']:.3f})")

probability = model.predict(x_val[:5])[:, 0]
for p, truth in zip(probability, y_val[:5, 0]):
    print(f"  survives with probability {p:.2f}; did survive: {bool(truth)}")
