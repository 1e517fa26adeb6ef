"""The CuPy backend against the NumPy backend on whole models: forward, gradients, a few steps.

Each model is built once on the CPU and copied to the GPU with the same weights; both see the same
batch. Outputs, the loss, every parameter's gradient and the weights after three SGD steps must
agree within float32 tolerance. These run only where CuPy and a CUDA device are present (the
`gpu` marker); on the CPU the same models are covered by the layer and model tests.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import pytest

import gnn
import gnn.functional as F
from gnn import nn, optim

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not gnn.cuda_available(), reason="needs CuPy and a CUDA device"),
]

RTOL, ATOL = 2e-4, 2e-5


def mlp_case():
    model = nn.Sequential(nn.Linear(20, 32), nn.Sigmoid(), nn.Linear(32, 7))  # fused sigmoid
    x = np.random.default_rng(0).standard_normal((16, 20)).astype(np.float32)
    y = np.random.default_rng(1).integers(0, 7, 16)
    return model, (x,), lambda out: F.cross_entropy(out, gnn.tensor(y, device=out.device))


def cnn_case():
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(6, 3),
    )
    x = np.random.default_rng(2).standard_normal((5, 1, 8, 8)).astype(np.float32)
    y = np.random.default_rng(3).integers(0, 3, 5)
    return model, (x,), lambda out: F.cross_entropy(out, gnn.tensor(y, device=out.device))


def autoencoder_case():
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, stride=2, padding=1),
        nn.Tanh(),
        nn.ConvTranspose2d(4, 1, 3, stride=2, padding=1, output_padding=1),
    )
    x = np.random.default_rng(4).standard_normal((3, 1, 8, 8)).astype(np.float32)
    return model, (x,), lambda out: F.mse_loss(out, gnn.tensor(x, device=out.device))


class RecurrentHead(nn.Module):
    def __init__(self, kind: type) -> None:
        super().__init__()
        self.rnn = kind(5, 8, num_layers=2, batch_first=True, bidirectional=True)
        self.head = nn.Linear(16, 1)

    def forward(self, x: gnn.Tensor) -> gnn.Tensor:
        out = self.rnn(x)[0]  # (B, T, 16)
        return self.head(out[:, -1])


def recurrent_case(kind: type, batch: int = 4):
    def case():
        x = np.random.default_rng(5).standard_normal((batch, 6, 5)).astype(np.float32)
        target = np.random.default_rng(6).standard_normal((batch, 1)).astype(np.float32)
        return (
            RecurrentHead(kind),
            (x,),
            lambda out: F.mse_loss(out, gnn.tensor(target, device=out.device)),
        )

    return case


def gpt_case():
    from gnn.models import GPT, GPTConfig

    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16))
    idx = np.random.default_rng(7).integers(0, 11, (3, 8))
    targets = np.random.default_rng(8).integers(0, 11, (3, 8))

    class WithTargets(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gpt = model

        def forward(self, i: gnn.Tensor) -> gnn.Tensor:
            return self.gpt(i, gnn.tensor(targets, device=i.device))[1]

    return WithTargets(), (idx,), lambda loss: loss


def transformer_case():
    model = nn.Transformer(
        d_model=16, nhead=2, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=24,
        dropout=0.0, batch_first=True,
    )  # fmt: skip
    rng = np.random.default_rng(9)
    src = rng.standard_normal((2, 5, 16)).astype(np.float32)
    tgt = rng.standard_normal((2, 4, 16)).astype(np.float32)
    mask = nn.Transformer.generate_square_subsequent_mask(4).numpy()
    proj = rng.standard_normal((2, 4, 16)).astype(np.float32)  # the output is layer-normed

    class WithMask(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.t = model

        def forward(self, s: gnn.Tensor, t: gnn.Tensor) -> gnn.Tensor:
            return self.t(s, t, tgt_mask=gnn.tensor(mask, device=s.device))

    return WithMask(), (src, tgt), lambda out: (out * gnn.tensor(proj, device=out.device)).mean()


CASES: dict[str, Callable] = {
    "mlp_sigmoid_ce": mlp_case,
    "cnn_batchnorm": cnn_case,
    "conv_autoencoder": autoencoder_case,
    "lstm": recurrent_case(nn.LSTM),
    "lstm_batch9": recurrent_case(nn.LSTM, batch=9),  # the batched input projection (batch >= 8)
    "gru": recurrent_case(nn.GRU),
    "rnn": recurrent_case(nn.RNN),
    "gpt": gpt_case,
    "transformer": transformer_case,
}


def run(model: nn.Module, inputs: tuple, loss_fn: Callable, device: str) -> dict:
    """Forward, backward and three SGD steps on `device`; everything returned as NumPy."""
    tensors = [gnn.tensor(a, device=device) for a in inputs]
    out = model(*tensors)
    loss = loss_fn(out)
    loss.backward()
    result = {
        "out": out.numpy(),
        "loss": loss.item(),
        "grads": {n: p.grad.numpy() for n, p in model.named_parameters() if p.grad is not None},
    }
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(3):
        opt.step()
        opt.zero_grad()
        loss_fn(model(*tensors)).backward()
    result["weights"] = {n: p.numpy() for n, p in model.named_parameters()}
    return result


@pytest.mark.parametrize("name", sorted(CASES))
def test_cuda_matches_cpu_on_whole_model(name: str) -> None:
    gnn.manual_seed(0)
    model, inputs, loss_fn = CASES[name]()
    gpu_model = copy.deepcopy(model).to("cuda")
    assert all(p.device.type == "cuda" for p in gpu_model.parameters())
    cpu = run(model, inputs, loss_fn, "cpu")
    gpu = run(gpu_model, inputs, loss_fn, "cuda")
    np.testing.assert_allclose(gpu["out"], cpu["out"], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(gpu["loss"], cpu["loss"], rtol=RTOL, atol=ATOL)
    assert set(gpu["grads"]) == set(cpu["grads"]) and cpu["grads"]
    for key, grad in cpu["grads"].items():
        np.testing.assert_allclose(gpu["grads"][key], grad, rtol=1e-3, atol=1e-4, err_msg=key)
    for key, weight in cpu["weights"].items():
        np.testing.assert_allclose(gpu["weights"][key], weight, rtol=1e-3, atol=1e-4, err_msg=key)


@pytest.mark.parametrize("n", [0, 1, 7, 1000])
def test_backend_permutation_is_a_permutation_on_the_device(n: int) -> None:
    be = gnn.backend.get_backend("cuda")
    order = be.permutation(n)
    assert be.is_array(order) and order.dtype.kind in "iu"
    np.testing.assert_array_equal(np.sort(be.to_numpy(order)), np.arange(n))


def _step_cases() -> dict[str, tuple]:
    """name: (model, loss of the model on fixed cuda inputs, optimizer, host reads per step)."""
    from gnn.models import GPT, GPTConfig

    rng = np.random.default_rng(0)

    def dev(a):
        return gnn.tensor(a, device="cuda")

    def normal(*shape):
        return dev(rng.standard_normal(shape).astype(np.float32))

    def labels(classes, n):
        return dev(rng.integers(0, classes, n))

    x, y = normal(16, 20), labels(5, 16)
    images, digits = normal(8, 1, 8, 8), labels(10, 8)
    seq, ids, next_ids = normal(4, 5, 6), dev(rng.integers(0, 30, (2, 16))), labels(30, 32)
    src, tgt = normal(2, 5, 8), normal(2, 4, 8)
    keep = dev(np.array([[0, 0, 0, 1, 1], [0, 0, 0, 0, 0]], dtype=bool))
    gpt = GPT(GPTConfig(vocab_size=30, block_size=16, n_layer=2, n_head=2, n_embd=16, dropout=0.1))
    causal = nn.Transformer.generate_square_subsequent_mask
    return {
        "mlp-sgd-momentum": (
            nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 5)),
            lambda m: F.cross_entropy(m(x), y),
            lambda p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
            0,
        ),
        "cnn-batchnorm-adam": (
            nn.Sequential(
                nn.Conv2d(1, 4, 3, padding=1),
                nn.BatchNorm2d(4),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Flatten(),
                nn.Linear(64, 10),
            ),
            lambda m: F.cross_entropy(m(images), digits),
            optim.Adam,
            0,
        ),
        "deconv-avgpool-gelu-layernorm": (
            nn.Sequential(
                nn.ConvTranspose2d(1, 3, 3, stride=2, padding=1, output_padding=1),
                nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False),
                nn.GELU(),
                nn.LayerNorm(8),
                nn.Dropout(0.3),
            ),
            lambda m: m(images).pow(2).mean(),
            optim.RMSprop,
            0,
        ),
        "lstm-gru-rnn": (
            nn.ModuleList(
                [
                    nn.LSTM(6, 8, batch_first=True, bidirectional=True),
                    nn.GRU(16, 8, 2),
                    nn.RNN(8, 4),
                ]
            ),
            lambda m: m[2](m[1](m[0](seq)[0])[0])[0].pow(2).mean(),
            optim.Adam,
            0,
        ),
        "transformer-masked": (
            nn.Transformer(8, 2, 1, 1, dim_feedforward=16, batch_first=True),
            lambda m: (
                m(src, tgt, tgt_mask=causal(4, device="cuda"), src_key_padding_mask=keep)
                .pow(2)
                .mean()
            ),
            optim.AdamW,
            0,
        ),
        # none: the token ids' range check is flagged on the device (raised by check_errors);
        # positions are a slice of wpe
        "gpt-adamw": (
            gpt,
            lambda m: F.cross_entropy(m(ids)[0].reshape(-1, 30), next_ids),
            optim.AdamW,
            0,
        ),
    }


@pytest.mark.parametrize(
    "name",
    [
        "mlp-sgd-momentum",
        "cnn-batchnorm-adam",
        "deconv-avgpool-gelu-layernorm",
        "lstm-gru-rnn",
        "transformer-masked",
        "gpt-adamw",
    ],
)
def test_a_training_step_does_not_wait_for_the_gpu(name: str) -> None:
    """Reading a device value on the host stalls the GPU's queue; a step should not need to.

    Counted by the fake CuPy (GNN_FAKE_CUDA=1), which tallies every device-to-host read and every
    copy of host data to the device (asarray of host data, list or NumPy indices).
    """
    import cupy

    if not hasattr(cupy, "host_reads"):
        pytest.skip("host reads are counted by the fake CuPy only")
    model, loss_of, make_opt, expected = _step_cases()[name]
    model.to("cuda")
    opt = make_opt(model.parameters())
    for _ in range(2):  # the second step: optimizer state exists
        reads, writes = cupy.host_reads, cupy.host_writes
        opt.zero_grad()
        loss_of(model).backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    assert cupy.host_reads - reads == expected
    assert cupy.host_writes - writes == 0  # no host data copied over within a step either


def test_python_numbers_in_arithmetic_are_copied_to_the_gpu_once() -> None:
    import cupy

    if not hasattr(cupy, "host_writes"):
        pytest.skip("host copies are counted by the fake CuPy only")
    x = gnn.ones(3, device="cuda", requires_grad=True)

    def step() -> None:
        ((x * 2.0 + 1.0) / 3.0 - 0.5).sum().backward()

    step()
    writes = cupy.host_writes
    step()
    assert cupy.host_writes == writes
    assert not np.signbit((x * 0.0).numpy()).any()
    assert np.signbit((x * -0.0).numpy()).all()  # the cached +0.0 must not stand in for -0.0
