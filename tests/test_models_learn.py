"""Models that really learn, on the CPU with fixed seeds: digits MLP (>= 0.95 test accuracy) and
CNN (>= 0.97), a convolutional autoencoder on digits, and an LSTM predicting a noisy sine wave."""

import numpy as np
import pytest

import gnn
import gnn.functional as F
from gnn import nn
from gnn.datasets import digits, train_test_split


def _digits(seed: int = 0):
    data = digits()
    return train_test_split(data.x, data.y, test_fraction=0.2, seed=seed, stratify=True)


def _batches(n: int, batch_size: int, rng: np.random.Generator):
    order = rng.permutation(n)
    for i in range(0, n, batch_size):
        yield order[i : i + batch_size]


def _train_classifier(model, x_tr, y_tr, epochs, lr, batch_size=32):
    opt = gnn.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(0)
    model.train()
    for _ in range(epochs):
        for idx in _batches(len(x_tr), batch_size, rng):
            opt.zero_grad()
            loss = F.cross_entropy(model(gnn.tensor(x_tr[idx])), gnn.tensor(y_tr[idx]))
            loss.backward()
            opt.step()
    model.eval()


def _accuracy(model, x, y) -> float:
    with gnn.no_grad():
        pred = model(gnn.tensor(x)).numpy().argmax(axis=1)
    return float((pred == y).mean())


@pytest.mark.slow
def test_digits_mlp_reaches_95_percent():
    gnn.manual_seed(0)
    x_tr, x_te, y_tr, y_te = _digits()
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    _train_classifier(model, x_tr, y_tr, epochs=30, lr=2e-3)
    assert _accuracy(model, x_te, y_te) >= 0.95


@pytest.mark.slow
def test_digits_cnn_reaches_97_percent():
    gnn.manual_seed(0)
    x_tr, x_te, y_tr, y_te = _digits()
    x_tr, x_te = x_tr.reshape(-1, 1, 8, 8), x_te.reshape(-1, 1, 8, 8)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),  # (N, 16, 4, 4)
        nn.Conv2d(16, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),  # (N, 32, 2, 2)
        nn.Flatten(),
        nn.Linear(128, 10),
    )
    _train_classifier(model, x_tr, y_tr, epochs=15, lr=2e-3)
    assert _accuracy(model, x_te, y_te) >= 0.97


@pytest.mark.slow
def test_conv_autoencoder_reconstructs_held_out_digits():
    gnn.manual_seed(0)
    x_tr, x_te, _, _ = _digits()
    x_tr, x_te = x_tr.reshape(-1, 1, 8, 8), x_te.reshape(-1, 1, 8, 8)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, stride=2, padding=1),  # (N, 16, 4, 4)
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1),  # (N, 32, 2, 2): 128 numbers for 64 pixels
        nn.ReLU(),
        nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1),  # (N, 16, 4, 4)
        nn.ReLU(),
        nn.ConvTranspose2d(16, 1, 3, stride=2, padding=1, output_padding=1),  # (N, 1, 8, 8)
        nn.Sigmoid(),
    )
    opt = gnn.optim.Adam(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(0)
    for _ in range(25):
        for idx in _batches(len(x_tr), 32, rng):
            opt.zero_grad()
            batch = gnn.tensor(x_tr[idx])
            F.mse_loss(model(batch), batch).backward()
            opt.step()
    with gnn.no_grad():
        mse = float(((model(gnn.tensor(x_te)).numpy() - x_te) ** 2).mean())
    # predicting the mean image scores about the variance; a working autoencoder far better
    print(f"autoencoder held-out MSE {mse:.4f}, variance {float(x_te.var()):.4f}")
    assert mse < 0.1 * float(x_te.var())


def _sine_data(n: int, t_len: int, rng: np.random.Generator):
    """Noisy sine waves (random frequency and phase); the target is the clean next value."""
    freq = rng.uniform(0.2, 0.6, size=(n, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1))
    t = np.arange(t_len + 1)[None, :]
    clean = np.sin(freq * t + phase)
    noisy = clean[:, :-1] + rng.normal(0, 0.2, size=(n, t_len))
    return noisy[..., None].astype(np.float32), clean[:, 1:, None].astype(np.float32)


@pytest.mark.slow
def test_lstm_predicts_a_noisy_sine_far_better_than_persistence():
    gnn.manual_seed(0)
    rng = np.random.default_rng(0)
    x_tr, y_tr = _sine_data(512, 30, rng)
    x_te, y_te = _sine_data(128, 30, rng)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(1, 32, batch_first=True)
            self.head = nn.Linear(32, 1)

        def forward(self, x):
            out, _ = self.lstm(x)
            return self.head(out)

    model = Net()
    opt = gnn.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(30):
        for idx in _batches(len(x_tr), 64, rng):
            opt.zero_grad()
            F.mse_loss(model(gnn.tensor(x_tr[idx])), gnn.tensor(y_tr[idx])).backward()
            opt.step()
    with gnn.no_grad():
        pred = model(gnn.tensor(x_te)).numpy()
    skip = 5  # the first steps cannot know the frequency yet
    mse = float(((pred - y_te)[:, skip:] ** 2).mean())
    persistence = float(((x_te - y_te)[:, skip:] ** 2).mean())  # "next value = this value"
    print(f"LSTM MSE {mse:.4f}, persistence {persistence:.4f}")
    assert mse < 0.25 * persistence
