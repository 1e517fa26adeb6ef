"""Small PyTorch-style training scripts, written for these tests, run twice: once with `torch` the
real PyTorch and once with `torch` bound to gnn. The script code is the same text for both (each
script is a function of the module it calls `torch`); they start from the same weights (PyTorch's
initial state dict, copied into gnn) and the same data, run in float64, and must agree to 1e-6
(they agree far closer: the measured gaps are printed with -s).

Random draws inside a script (VAE noise, GAN latents) come from one NumPy stream handed to both
runs, since two libraries' generators cannot produce the same numbers. Skipped without PyTorch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import gnn

torch_lib = pytest.importorskip("torch")

TOL = 1e-6


@pytest.fixture(autouse=True)
def _float64() -> Any:
    old_t, old_g = torch_lib.get_default_dtype(), gnn.get_default_dtype()
    torch_lib.set_default_dtype(torch_lib.float64)
    gnn.set_default_dtype(gnn.float64)
    yield
    torch_lib.set_default_dtype(old_t)
    gnn.set_default_dtype(old_g)


def _np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach()
    return np.asarray(x.numpy() if hasattr(x, "numpy") else x, dtype=np.float64)


def _state(model: Any) -> dict[str, np.ndarray]:
    return {k: _np(v).copy() for k, v in model.state_dict().items()}


def _gap(a: Any, b: Any) -> float:
    """Largest absolute difference between two (nested) results."""
    if isinstance(a, dict):
        assert set(a) == set(b), set(a) ^ set(b)
        return max((_gap(a[k], b[k]) for k in a), default=0.0)
    if isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        return max((_gap(x, y) for x, y in zip(a, b)), default=0.0)
    x, y = _np(a), _np(b)
    assert x.shape == y.shape, (x.shape, y.shape)
    return float(np.max(np.abs(x - y))) if x.size else 0.0


def _noise_stream(seed: int) -> Callable[..., np.ndarray]:
    rng = np.random.default_rng(seed)
    return lambda *shape: rng.standard_normal(shape)


def _compare(name: str, ours: Any, theirs: Any) -> float:
    gap = _gap(ours, theirs)
    print(f"{name}: max |gnn - PyTorch| = {gap:.3g}")
    assert gap <= TOL, f"{name}: gnn and PyTorch differ by {gap}"
    return gap


# ---- 1. a GPT: training with a checkpoint and resume, then sampling ---------------------------


def gpt_script(torch: Any, workdir: str, init: dict | None, data: np.ndarray) -> dict:
    """Train a tiny GPT for a few steps, save a checkpoint, resume from it in a fresh model and
    optimizer, train on, then sample greedily (top_k=1) and with top_k=3 logits."""
    nn = torch.nn
    F = torch.nn.functional

    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    device = "cuda" if torch.cuda.is_available() else "cpu"
    device_type = "cuda" if "cuda" in device else "cpu"
    assert device_type == "cpu"

    class CausalSelfAttention(nn.Module):
        def __init__(self, n_embd: int, n_head: int, block_size: int) -> None:
            super().__init__()
            self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=False)
            self.c_proj = nn.Linear(n_embd, n_embd, bias=False)
            self.n_head, self.n_embd = n_head, n_embd
            mask = torch.tril(torch.ones(block_size, block_size)).view(1, 1, block_size, block_size)
            self.register_buffer("bias", mask)

        def forward(self, x: Any) -> Any:
            B, T, C = x.size()
            q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
            k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
            q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
            v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
            att = F.softmax(att, dim=-1)
            y = att @ v
            y = y.transpose(1, 2).contiguous().view(B, T, C)
            return self.c_proj(y)

    class Block(nn.Module):
        def __init__(self, n_embd: int, n_head: int, block_size: int) -> None:
            super().__init__()
            self.ln_1 = nn.LayerNorm(n_embd)
            self.attn = CausalSelfAttention(n_embd, n_head, block_size)
            self.ln_2 = nn.LayerNorm(n_embd)
            self.mlp = nn.Sequential(
                nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd)
            )

        def forward(self, x: Any) -> Any:
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class GPT(nn.Module):
        def __init__(self, vocab: int, block_size: int, n_embd: int, n_head: int, n_layer: int):
            super().__init__()
            self.block_size = block_size
            self.wte = nn.Embedding(vocab, n_embd)
            self.wpe = nn.Embedding(block_size, n_embd)
            self.h = nn.ModuleList([Block(n_embd, n_head, block_size) for _ in range(n_layer)])
            self.ln_f = nn.LayerNorm(n_embd)
            self.lm_head = nn.Linear(n_embd, vocab, bias=False)
            self.wte.weight = self.lm_head.weight  # weight tying
            self.apply(self._init_weights)
            for pn, p in self.named_parameters():
                if pn.endswith("c_proj.weight"):
                    torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))

        def _init_weights(self, module: Any) -> None:
            if isinstance(module, nn.Linear):
                torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
                if module.bias is not None:
                    torch.nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

        def forward(self, idx: Any, targets: Any = None) -> tuple:
            b, t = idx.size()
            pos = torch.arange(0, t, dtype=torch.long, device=device)
            x = self.wte(idx) + self.wpe(pos)
            for block in self.h:
                x = block(x)
            x = self.ln_f(x)
            if targets is None:
                return self.lm_head(x[:, [-1], :]), None
            logits = self.lm_head(x)
            loss = F.cross_entropy(
                logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1
            )
            return logits, loss

        def configure_optimizers(self, weight_decay: float, lr: float, betas: tuple) -> Any:
            params = {pn: p for pn, p in self.named_parameters() if p.requires_grad}
            decay = [p for n, p in params.items() if p.dim() >= 2]
            nodecay = [p for n, p in params.items() if p.dim() < 2]
            groups = [
                {"params": decay, "weight_decay": weight_decay},
                {"params": nodecay, "weight_decay": 0.0},
            ]
            return torch.optim.AdamW(groups, lr=lr, betas=betas)

        @torch.no_grad()
        def generate(self, idx: Any, max_new_tokens: int, temperature: float = 1.0, top_k: int = 1):
            for _ in range(max_new_tokens):
                idx_cond = idx if idx.size(1) <= self.block_size else idx[:, -self.block_size :]
                logits, _ = self(idx_cond)
                logits = logits[:, -1, :] / temperature
                if top_k is not None:
                    v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                    logits[logits < v[:, [-1]]] = -float("Inf")
                probs = F.softmax(logits, dim=-1)
                idx_next = torch.multinomial(probs, num_samples=1)
                idx = torch.cat((idx, idx_next), dim=1)
            return idx

    config = dict(vocab=11, block_size=8, n_embd=16, n_head=2, n_layer=2)
    learning_rate, warmup, max_iters, min_lr = 3e-3, 2, 8, 3e-4

    def get_lr(it: int) -> float:
        if it < warmup:
            return learning_rate * (it + 1) / (warmup + 1)
        ratio = (it - warmup) / (max_iters - warmup)
        return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (learning_rate - min_lr)

    def get_batch(it: int) -> tuple:
        starts = [(it * 7 + j * 5) % (len(data) - config["block_size"] - 1) for j in range(4)]
        x = torch.stack([torch.from_numpy(data[i : i + 8].astype(np.int64)) for i in starts])
        y = torch.stack([torch.from_numpy(data[i + 1 : i + 9].astype(np.int64)) for i in starts])
        return x.to(device), y.to(device)

    def train(model: Any, optimizer: Any, start: int, stop: int, losses: list) -> None:
        model.train()
        for it in range(start, stop):
            lr = get_lr(it)
            for param_group in optimizer.param_groups:
                param_group["lr"] = lr
            X, Y = get_batch(it)
            _, loss = model(X, Y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            losses.append(loss.item())
            print(f"iter {it}: loss {loss:.4f}, lr {lr:.2e}")

    torch.manual_seed(1337)
    model = GPT(**config).to(device)
    if init is not None:
        model.load_state_dict({k: torch.tensor(v) for k, v in init.items()})
    start_state = _state(model)
    n_params = sum(p.numel() for p in model.parameters())
    optimizer = model.configure_optimizers(0.1, learning_rate, (0.9, 0.95))
    losses: list = []
    train(model, optimizer, 0, 4, losses)
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "model_args": config,
        "iter_num": 4,
        "best_val_loss": losses[-1],
    }
    torch.save(checkpoint, f"{workdir}/ckpt.pt")

    # resume, as a training script started again with init_from="resume"
    checkpoint = torch.load(f"{workdir}/ckpt.pt", map_location=device, weights_only=True)
    model = GPT(**checkpoint["model_args"]).to(device)
    model.load_state_dict(checkpoint["model"])
    optimizer = model.configure_optimizers(0.1, learning_rate, (0.9, 0.95))
    optimizer.load_state_dict(checkpoint["optimizer"])
    iter_num, best = checkpoint["iter_num"], checkpoint["best_val_loss"]
    checkpoint = None
    train(model, optimizer, iter_num, max_iters, losses)

    # sampling, as a sample script does after loading the checkpoint
    model.eval()
    start_ids = torch.tensor([[1, 2, 3]], dtype=torch.long, device=device)
    greedy = model.generate(start_ids, max_new_tokens=10, top_k=1)
    with torch.no_grad():
        logits, _ = model(greedy[:, -8:])
        top3 = torch.topk(logits[:, -1, :] / 0.8, 3).values
    return {
        "init": start_state,
        "losses": losses,
        "best": best,
        "n_params": float(n_params),
        "final": _state(model),
        "greedy": greedy.numpy().astype(np.float64),
        "top3": top3,
    }


def test_gpt_training_resume_and_sampling(tmp_path) -> None:
    data = np.random.default_rng(0).integers(0, 11, 200)
    (tmp_path / "t").mkdir()
    (tmp_path / "g").mkdir()
    theirs = gpt_script(torch_lib, str(tmp_path / "t"), None, data)
    ours = gpt_script(gnn, str(tmp_path / "g"), theirs["init"], data)
    assert len(ours["losses"]) == 8
    _compare("gpt", ours, theirs)
    assert _gap(ours["final"], ours["init"]) > 1e-3  # it trained
    assert ours["greedy"].shape == (1, 13)


# ---- 2. an MNIST-style CNN with Adadelta and StepLR --------------------------------------------


def mnist_script(torch: Any, init: dict | None, images: np.ndarray, labels: np.ndarray) -> dict:
    nn = torch.nn
    F = torch.nn.functional
    from_data = torch.utils.data

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, 4, 3, 1)
            self.conv2 = nn.Conv2d(4, 8, 3, 1)
            self.dropout1 = nn.Dropout(0.0)
            self.dropout2 = nn.Dropout(0.0)
            self.fc1 = nn.Linear(8 * 4 * 4, 16)
            self.fc2 = nn.Linear(16, 10)

        def forward(self, x: Any) -> Any:
            x = self.conv1(x)
            x = F.relu(x)
            x = self.conv2(x)
            x = F.relu(x)
            x = F.max_pool2d(x, 2)
            x = self.dropout1(x)
            x = torch.flatten(x, 1)
            x = self.fc1(x)
            x = F.relu(x)
            x = self.dropout2(x)
            x = self.fc2(x)
            return F.log_softmax(x, dim=1)

    def train(model: Any, device: Any, loader: Any, optimizer: Any, epoch: int, out: list):
        model.train()
        for batch_idx, (data, target) in enumerate(loader):
            data, target = data.to(device), target.to(device)
            optimizer.zero_grad()
            output = model(data)
            loss = F.nll_loss(output, target)
            loss.backward()
            optimizer.step()
            out.append(loss.item())
            if batch_idx % 2 == 0:
                print(f"Train Epoch: {epoch} [{batch_idx * len(data)}/{len(loader.dataset)}]"
                      f"\tLoss: {loss.item():.6f}")  # fmt: skip

    def test(model: Any, device: Any, loader: Any) -> tuple:
        model.eval()
        test_loss, correct = 0.0, 0
        with torch.no_grad():
            for data, target in loader:
                data, target = data.to(device), target.to(device)
                output = model(data)
                test_loss += F.nll_loss(output, target, reduction="sum").item()
                pred = output.argmax(dim=1, keepdim=True)
                correct += pred.eq(target.view_as(pred)).sum().item()
        return test_loss / len(loader.dataset), correct

    use_cuda = torch.cuda.is_available()
    device = torch.device("cuda" if use_cuda else "cpu")
    torch.manual_seed(1)
    dataset = from_data.TensorDataset(torch.tensor(images), torch.tensor(labels))
    train_loader = from_data.DataLoader(dataset, batch_size=8, shuffle=False)
    test_loader = from_data.DataLoader(dataset, batch_size=16)
    model = Net().to(device)
    if init is not None:
        model.load_state_dict({k: torch.tensor(v) for k, v in init.items()})
    start = _state(model)
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    losses: list = []
    evals, lrs = [], []
    for epoch in range(1, 4):
        train(model, device, train_loader, optimizer, epoch, losses)
        evals.append(test(model, device, test_loader))
        scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    return {"init": start, "losses": losses, "evals": evals, "lrs": lrs, "final": _state(model)}


def test_mnist_cnn_with_adadelta_and_steplr() -> None:
    rng = np.random.default_rng(1)
    images = rng.standard_normal((24, 1, 12, 12))
    labels = rng.integers(0, 10, 24)
    theirs = mnist_script(torch_lib, None, images, labels)
    ours = mnist_script(gnn, theirs["init"], images, labels)
    assert [c for _, c in ours["evals"]] == [c for _, c in theirs["evals"]]
    _compare("mnist", ours, theirs)


# ---- 3. sequence prediction: stacked LSTM cells trained with LBFGS ----------------------------


def sequence_script(torch: Any, init: dict | None, waves: np.ndarray) -> dict:
    nn = torch.nn

    class Sequence(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm1 = nn.LSTMCell(1, 12)
            self.lstm2 = nn.LSTMCell(12, 12)
            self.linear = nn.Linear(12, 1)

        def forward(self, input: Any, future: int = 0) -> Any:
            outputs = []
            h_t = torch.zeros(input.size(0), 12, dtype=torch.double)
            c_t = torch.zeros(input.size(0), 12, dtype=torch.double)
            h_t2 = torch.zeros(input.size(0), 12, dtype=torch.double)
            c_t2 = torch.zeros(input.size(0), 12, dtype=torch.double)
            for input_t in input.split(1, dim=1):
                h_t, c_t = self.lstm1(input_t, (h_t, c_t))
                h_t2, c_t2 = self.lstm2(h_t, (h_t2, c_t2))
                output = self.linear(h_t2)
                outputs += [output]
            for _ in range(future):
                h_t, c_t = self.lstm1(output, (h_t, c_t))
                h_t2, c_t2 = self.lstm2(h_t, (h_t2, c_t2))
                output = self.linear(h_t2)
                outputs += [output]
            return torch.cat(outputs, dim=1)

    data = torch.from_numpy(waves)
    input, target = data[3:, :-1], data[3:, 1:]
    test_input, test_target = data[:3, :-1], data[:3, 1:]
    seq = Sequence().double()
    if init is not None:
        seq.load_state_dict({k: torch.tensor(v) for k, v in init.items()})
    start = _state(seq)
    criterion = nn.MSELoss()
    optimizer = torch.optim.LBFGS(seq.parameters(), lr=0.8, max_iter=5)
    losses, test_losses, preds = [], [], []
    for i in range(3):

        def closure() -> Any:
            optimizer.zero_grad()
            out = seq(input)
            loss = criterion(out, target)
            losses.append(loss.item())
            loss.backward()
            return loss

        optimizer.step(closure)
        with torch.no_grad():
            future = 5
            pred = seq(test_input, future=future)
            loss = criterion(pred[:, :-future], test_target)
            print("step", i, "test loss:", loss.item())
            test_losses.append(loss.item())
            preds.append(pred.detach().numpy())
    return {"init": start, "losses": losses, "test": test_losses, "preds": preds,
            "final": _state(seq)}  # fmt: skip


def test_lstm_sequence_prediction_with_lbfgs() -> None:
    t = np.arange(18) + np.random.default_rng(2).integers(-8, 8, (8, 1))
    waves = np.sin(t / 4.0)
    theirs = sequence_script(torch_lib, None, waves)
    ours = sequence_script(gnn, theirs["init"], waves)
    assert len(ours["losses"]) == len(theirs["losses"])  # the same closure evaluations
    _compare("lstm-lbfgs", ours, theirs)


# ---- 4. a VAE ---------------------------------------------------------------------------------


def vae_script(torch: Any, init: dict | None, images: np.ndarray, noise: Callable) -> dict:
    nn = torch.nn
    F = torch.nn.functional

    class VAE(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = nn.Linear(36, 20)
            self.fc21 = nn.Linear(20, 4)
            self.fc22 = nn.Linear(20, 4)
            self.fc3 = nn.Linear(4, 20)
            self.fc4 = nn.Linear(20, 36)

        def encode(self, x: Any) -> tuple:
            h1 = F.relu(self.fc1(x))
            return self.fc21(h1), self.fc22(h1)

        def reparameterize(self, mu: Any, logvar: Any) -> Any:
            std = torch.exp(0.5 * logvar)
            eps = torch.tensor(noise(*std.shape))  # torch.randn_like(std), from a shared stream
            return mu + eps * std

        def decode(self, z: Any) -> Any:
            h3 = F.relu(self.fc3(z))
            return torch.sigmoid(self.fc4(h3))

        def forward(self, x: Any) -> tuple:
            mu, logvar = self.encode(x.view(-1, 36))
            z = self.reparameterize(mu, logvar)
            return self.decode(z), mu, logvar

    def loss_function(recon_x: Any, x: Any, mu: Any, logvar: Any) -> Any:
        bce = F.binary_cross_entropy(recon_x, x.view(-1, 36), reduction="sum")
        kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        return bce + kld

    model = VAE()
    if init is not None:
        model.load_state_dict({k: torch.tensor(v) for k, v in init.items()})
    start = _state(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.tensor(images)), batch_size=5
    )
    losses = []
    for epoch in range(1, 3):
        model.train()
        train_loss = 0.0
        for (data,) in loader:
            optimizer.zero_grad()
            recon_batch, mu, logvar = model(data)
            loss = loss_function(recon_batch, data, mu, logvar)
            loss.backward()
            train_loss += loss.item()
            optimizer.step()
        losses.append(train_loss / len(loader.dataset))
        print(f"====> Epoch: {epoch} Average loss: {losses[-1]:.4f}")
    model.eval()
    with torch.no_grad():
        sample = model.decode(torch.tensor(noise(3, 4)))
    return {"init": start, "losses": losses, "sample": sample, "final": _state(model)}


def test_vae() -> None:
    images = np.random.default_rng(3).uniform(0.0, 1.0, (15, 1, 6, 6))
    theirs = vae_script(torch_lib, None, images, _noise_stream(9))
    ours = vae_script(gnn, theirs["init"], images, _noise_stream(9))
    _compare("vae", ours, theirs)


# ---- 5. a DCGAN -------------------------------------------------------------------------------


def dcgan_script(torch: Any, init: tuple | None, images: np.ndarray, noise: Callable) -> dict:
    nn = torch.nn
    nz, ngf, ndf, nc = 4, 4, 4, 1

    def weights_init(m: Any) -> None:
        classname = m.__class__.__name__
        if classname.find("Conv") != -1:
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif classname.find("BatchNorm") != -1:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.constant_(m.bias, 0)

    class Generator(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.main = nn.Sequential(
                nn.ConvTranspose2d(nz, ngf * 2, 4, 1, 0, bias=False),
                nn.BatchNorm2d(ngf * 2),
                nn.ReLU(True),
                nn.ConvTranspose2d(ngf * 2, nc, 4, 2, 1, bias=False),
                nn.Tanh(),
            )

        def forward(self, input: Any) -> Any:
            return self.main(input)

    class Discriminator(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.main = nn.Sequential(
                nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ndf * 2),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(ndf * 2, 1, 2, 1, 0, bias=False),
                nn.Sigmoid(),
            )

        def forward(self, input: Any) -> Any:
            return self.main(input).view(-1, 1).squeeze(1)

    cudnn = torch.backends.cudnn
    cudnn.benchmark = True
    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    netG = Generator().to(device)
    netG.apply(weights_init)
    netD = Discriminator().to(device)
    netD.apply(weights_init)
    if init is not None:
        netG.load_state_dict({k: torch.tensor(v) for k, v in init[0].items()})
        netD.load_state_dict({k: torch.tensor(v) for k, v in init[1].items()})
    start = (_state(netG), _state(netD))
    criterion = nn.BCELoss()
    fixed_noise = torch.tensor(noise(4, nz, 1, 1), device=device)
    real_label, fake_label = 1.0, 0.0
    optimizerD = torch.optim.Adam(netD.parameters(), lr=2e-3, betas=(0.5, 0.999))
    optimizerG = torch.optim.Adam(netG.parameters(), lr=2e-3, betas=(0.5, 0.999))
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.tensor(images)), batch_size=4, shuffle=False
    )
    record = []
    for epoch in range(2):
        for i, data in enumerate(loader, 0):
            netD.zero_grad()
            real_cpu = data[0].to(device)
            b_size = real_cpu.size(0)
            label = torch.full((b_size,), real_label, device=device)
            output = netD(real_cpu)
            errD_real = criterion(output, label)
            errD_real.backward()
            D_x = output.mean().item()
            z = torch.tensor(noise(b_size, nz, 1, 1), device=device)
            fake = netG(z)
            label.fill_(fake_label)
            output = netD(fake.detach())
            errD_fake = criterion(output, label)
            errD_fake.backward()
            D_G_z1 = output.mean().item()
            errD = errD_real + errD_fake
            optimizerD.step()
            netG.zero_grad()
            label.fill_(real_label)
            output = netD(fake)
            errG = criterion(output, label)
            errG.backward()
            D_G_z2 = output.mean().item()
            optimizerG.step()
            record.append([errD.item(), errG.item(), D_x, D_G_z1, D_G_z2])
            print(f"[{epoch}/2][{i}/{len(loader)}] Loss_D: {errD.item():.4f} "
                  f"Loss_G: {errG.item():.4f} D(x): {D_x:.4f} D(G(z)): {D_G_z1:.4f}")  # fmt: skip
    with torch.no_grad():
        fake = netG(fixed_noise).detach().cpu()
    return {"init": start, "record": record, "fake": fake, "final": (_state(netG), _state(netD))}


def test_dcgan() -> None:
    images = np.tanh(np.random.default_rng(4).standard_normal((8, 1, 8, 8)))
    theirs = dcgan_script(torch_lib, None, images, _noise_stream(5))
    ours = dcgan_script(gnn, theirs["init"], images, _noise_stream(5))
    _compare("dcgan", ours, theirs)


# ---- 6. a word language model trained with hand-written updates through .data -----------------


def word_lm_script(torch: Any, init: dict | None, text: str, cell: str, tied: bool) -> dict:
    """Embedding, a 2-layer recurrent net and a linear decoder over a word corpus, trained by
    truncated backpropagation with clipped gradients and `p.data.add_` SGD steps; the learning
    rate drops when the validation loss stops improving."""
    import math

    nn = torch.nn
    F = torch.nn.functional

    class Vocab:
        def __init__(self) -> None:
            self.index: dict[str, int] = {}
            self.words: list[str] = []

        def add(self, word: str) -> int:
            if word not in self.index:
                self.index[word] = len(self.words)
                self.words.append(word)
            return self.index[word]

        def encode(self, lines: list[str]) -> Any:
            ids = [self.add(w) for line in lines for w in line.split() + ["<eos>"]]
            return torch.tensor(ids, dtype=torch.int64)

    class LanguageModel(nn.Module):
        def __init__(self, n_words: int, n_emb: int, n_hidden: int, n_layers: int) -> None:
            super().__init__()
            self.n_words, self.n_hidden, self.n_layers = n_words, n_hidden, n_layers
            self.drop = nn.Dropout(0.0)
            self.embed = nn.Embedding(n_words, n_emb)
            self.rnn = getattr(nn, cell)(n_emb, n_hidden, n_layers)
            self.out = nn.Linear(n_hidden, n_words)
            if tied:
                assert n_emb == n_hidden
                self.out.weight = self.embed.weight
            self.reset_weights(0.1)

        def reset_weights(self, r: float) -> None:
            nn.init.uniform_(self.embed.weight.data, -r, r)
            self.out.bias.data.zero_()
            if not tied:
                self.out.weight.data.uniform_(-r, r)

        def forward(self, words: Any, state: Any) -> tuple[Any, Any]:
            x = self.drop(self.embed(words))
            y, state = self.rnn(x, state)
            logits = self.out(self.drop(y))
            return F.log_softmax(logits.view(-1, self.n_words), dim=1), state

        def zero_state(self, batch: int) -> Any:
            w = next(self.parameters())
            shape = (self.n_layers, batch, self.n_hidden)
            if cell == "LSTM":
                return (w.new_zeros(shape), w.new_zeros(shape))
            return w.new_zeros(shape)

    def columns(ids: Any, batch: int) -> Any:
        n = ids.size(0) // batch
        return ids.narrow(0, 0, n * batch).view(batch, -1).t().contiguous()

    def window(source: Any, i: int, bptt: int) -> tuple[Any, Any]:
        n = min(bptt, len(source) - 1 - i)
        return source[i : i + n], source[i + 1 : i + 1 + n].reshape(-1)

    def cut(state: Any) -> Any:
        if isinstance(state, torch.Tensor):
            return state.detach()
        return tuple(cut(s) for s in state)

    lines = text.strip().split("\n")
    vocab = Vocab()
    train_ids, valid_ids = vocab.encode(lines[:-4]), vocab.encode(lines[-4:])
    train, valid = columns(train_ids, 4), columns(valid_ids, 2)
    model = LanguageModel(len(vocab.words), 8, 8 if tied else 10, 2).double()
    r = float(model.embed.weight.data.abs().max())
    assert 0.05 < r <= 0.1, r  # the .data initialisation reached the parameter
    if init is not None:
        model.load_state_dict({k: torch.tensor(v) for k, v in init.items()})
    start = _state(model)
    loss_fn = nn.NLLLoss()
    lr, clip, bptt = 5.0, 0.1, 6
    best = None
    losses, val_losses, norms, lrs = [], [], [], []

    def evaluate(source: Any) -> float:
        model.eval()
        total, state = 0.0, model.zero_state(2)
        with torch.no_grad():
            for i in range(0, source.size(0) - 1, bptt):
                x, y = window(source, i, bptt)
                logp, state = model(x, state)
                total += len(x) * loss_fn(logp, y).item()
                state = cut(state)
        return total / (len(source) - 1)

    for epoch in range(3):
        model.train()
        state = model.zero_state(4)
        for i in range(0, train.size(0) - 1, bptt):
            x, y = window(train, i, bptt)
            model.zero_grad()
            state = cut(state)
            logp, state = model(x, state)
            loss = loss_fn(logp, y)
            loss.backward()
            norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), clip)))
            for p in model.parameters():
                p.data.add_(p.grad, alpha=-lr)
            losses.append(loss.item())
        val = evaluate(valid)
        print(f"epoch {epoch}: valid loss {val:.4f}, ppl {math.exp(val):.2f}, lr {lr}")
        val_losses.append(val)
        if best is None or val < best:
            best = val
        else:
            lr /= 4.0
        lrs.append(lr)
    return {"init": start, "losses": losses, "val": val_losses, "norms": norms, "lrs": lrs,
            "final": _state(model)}  # fmt: skip


def _corpus(seed: int, n_lines: int) -> str:
    """Sentences from a small grammar, so that the model has something to learn."""
    rng = np.random.default_rng(seed)
    who = ["the cat", "a dog", "my friend", "the old man", "she", "we"]
    did = ["sees", "likes", "finds", "walks past", "talks to"]
    what = ["the river", "a small house", "the market", "an apple", "the red door"]
    when = ["today", "at night", "again", "slowly", ""]
    parts = [who, did, what, when]
    return "\n".join(
        " ".join(p[rng.integers(len(p))] for p in parts).strip() for _ in range(n_lines)
    )


@pytest.mark.parametrize(("cell", "tied"), [("LSTM", True), ("GRU", False)])
def test_word_language_model_with_updates_through_data(cell: str, tied: bool) -> None:
    text = _corpus(6, 40)
    theirs = word_lm_script(torch_lib, None, text, cell, tied)
    ours = word_lm_script(gnn, theirs["init"], text, cell, tied)
    assert len(ours["losses"]) == len(theirs["losses"]) > 10
    assert theirs["losses"][-1] < theirs["losses"][0]  # it learns
    assert min(theirs["norms"]) > 0.1  # clipping took part in every step
    _compare(f"word-lm-{cell.lower()}-{'tied' if tied else 'untied'}", ours, theirs)
