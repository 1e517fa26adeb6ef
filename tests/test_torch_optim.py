"""LBFGS, Adadelta, Adagrad, NAdam, RAdam (and the state_dict layout of every optimizer) against
PyTorch, run live in float64: parameters after every step, and the final state."""

from __future__ import annotations

import numpy as np
import pytest

import gnn
from gnn import optim

torch = pytest.importorskip("torch")

CASES = [
    ("Adadelta", {}),
    ("Adadelta", {"lr": 0.5, "rho": 0.8, "eps": 1e-5, "weight_decay": 0.1}),
    ("Adadelta", {"maximize": True}),
    ("Adagrad", {}),
    (
        "Adagrad",
        {
            "lr": 0.1,
            "lr_decay": 0.05,
            "weight_decay": 0.2,
            "initial_accumulator_value": 0.3,
            "eps": 1e-6,
        },
    ),  # fmt: skip
    ("Adagrad", {"maximize": True}),
    ("NAdam", {}),
    ("NAdam", {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.1, "momentum_decay": 0.01}),
    ("NAdam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("NAdam", {"maximize": True}),
    ("RAdam", {}),
    ("RAdam", {"lr": 0.01, "betas": (0.5, 0.9), "weight_decay": 0.1}),  # rectifies from step 3
    ("RAdam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("RAdam", {"maximize": True}),
]
STEPS = 8


@pytest.fixture(autouse=True)
def _torch_float64() -> object:
    """PyTorch keeps scalar state (NAdam's mu_product) in its default dtype: make that float64,
    as gnn keeps it (a Python float)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _ids() -> list[str]:
    return [f"{name}-{i}" for i, (name, _) in enumerate(CASES)]


@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=_ids())
def test_first_order_optimizers_match_pytorch(name: str, kwargs: dict) -> None:
    rng = np.random.default_rng(len(name) * 31 + len(kwargs))
    inits = [rng.standard_normal((3, 4)), rng.standard_normal(5)]
    ours = [gnn.tensor(a.copy(), dtype="float64", requires_grad=True) for a in inits]
    theirs = [torch.tensor(a.copy(), requires_grad=True) for a in inits]
    opt = getattr(optim, name)(ours, **kwargs)
    ref = getattr(torch.optim, name)(theirs, **kwargs)
    for _ in range(STEPS):
        for p, q in zip(ours, theirs):
            g = rng.standard_normal(p.shape)
            p.grad = gnn.tensor(g, dtype="float64")
            q.grad = torch.tensor(g)
        opt.step()
        ref.step()
        for p, q in zip(ours, theirs):
            np.testing.assert_allclose(p.numpy(), q.detach().numpy(), rtol=1e-12, atol=1e-14)
    _same_state(opt.state_dict(), ref.state_dict())


def _same_state(mine: dict, ref: dict, missing_ok: frozenset = frozenset()) -> None:
    """The same layout as PyTorch's state_dict, and the same values."""
    assert set(mine) == {"state", "param_groups"}
    assert sorted(mine["state"]) == sorted(ref["state"])
    for idx, entry in ref["state"].items():
        assert set(mine["state"][idx]) == set(entry), (idx, set(entry))
        for k, v in entry.items():
            got = mine["state"][idx][k]
            got = got.numpy() if isinstance(got, gnn.Tensor) else got
            want = v.detach().numpy() if torch.is_tensor(v) else v
            if isinstance(want, list):  # LBFGS history
                assert len(got) == len(want)
                continue
            if want is None:
                assert got is None
                continue
            np.testing.assert_allclose(np.asarray(got, dtype=float), want, rtol=1e-12, atol=1e-14)
    torch_only = {"foreach", "capturable", "differentiable", "fused"} | missing_ok
    for g_mine, g_ref in zip(mine["param_groups"], ref["param_groups"]):
        assert set(g_ref) - torch_only <= set(g_mine), set(g_ref) - set(g_mine)
        assert g_mine["params"] == g_ref["params"]


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop"])
def test_existing_optimizers_state_dict_layout_matches_pytorch(name: str) -> None:
    kwargs = {"lr": 0.01, "momentum": 0.9} if name in ("SGD", "RMSprop") else {"lr": 0.01}
    a, b = np.ones((2, 2)), np.arange(3.0)
    ours = [gnn.tensor(a, dtype="float64", requires_grad=True),
            gnn.tensor(b, dtype="float64", requires_grad=True)]  # fmt: skip
    theirs = [torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)]
    opt = getattr(optim, name)([{"params": ours[:1]}, {"params": ours[1:], "lr": 0.1}], **kwargs)
    ref = getattr(torch.optim, name)([{"params": theirs[:1]}, {"params": theirs[1:], "lr": 0.1}],
                                     **kwargs)  # fmt: skip
    for p, q in zip(ours, theirs):
        p.grad = gnn.ones_like(p)
        q.grad = torch.ones_like(q)
    opt.step()
    ref.step()
    # gnn's Adam spells decoupled weight decay as the class AdamW, not a group flag.
    _same_state(opt.state_dict(), ref.state_dict(), frozenset({"decoupled_weight_decay"}))


def _problem(lib: object, params: list) -> object:
    """A small nonlinear least-squares problem: a two-layer tanh net fitting fixed data."""
    rng = np.random.default_rng(7)
    x = lib.tensor(rng.standard_normal((16, 3)))
    y = lib.tensor(np.sin(rng.standard_normal((16, 2))))
    if lib is gnn:
        x, y = x.double(), y.double()
    w1, b1, w2 = params
    out = lib.tanh(x @ w1 + b1) @ w2
    return ((out - y) ** 2).mean()


LBFGS_CASES = [
    {},
    {"line_search_fn": "strong_wolfe"},
    {"history_size": 3, "max_iter": 7, "lr": 0.8},
    {"history_size": 3, "max_iter": 9, "line_search_fn": "strong_wolfe"},
    {"lr": 0.5, "max_iter": 5, "max_eval": 6, "tolerance_change": 1e-6},
]


@pytest.mark.parametrize("kwargs", LBFGS_CASES, ids=[str(c) for c in LBFGS_CASES])
def test_lbfgs_matches_pytorch(kwargs: dict) -> None:
    rng = np.random.default_rng(3)
    inits = [rng.standard_normal((3, 5)) * 0.5, rng.standard_normal(5) * 0.1,
             rng.standard_normal((5, 2)) * 0.5]  # fmt: skip
    ours = [gnn.tensor(a, dtype="float64", requires_grad=True) for a in inits]
    theirs = [torch.tensor(a, requires_grad=True) for a in inits]
    opt = optim.LBFGS(ours, **kwargs)
    ref = torch.optim.LBFGS(theirs, **kwargs)

    def closure_ours() -> gnn.Tensor:
        opt.zero_grad()
        loss = _problem(gnn, ours)
        loss.backward()
        return loss

    def closure_theirs() -> object:
        ref.zero_grad()
        loss = _problem(torch, theirs)
        loss.backward()
        return loss

    # Up to 60 quasi-Newton iterations: the last-bit differences of the two float64 forwards
    # (1e-16) grow to about 1e-10 by the end; the same number of evaluations at every step shows
    # that every line-search and stopping decision was the same.
    for _ in range(3):
        a = opt.step(closure_ours)
        b = ref.step(closure_theirs)
        assert abs(float(a) - float(b.detach())) <= 1e-10
        for p, q in zip(ours, theirs):
            np.testing.assert_allclose(p.numpy(), q.detach().numpy(), rtol=0, atol=1e-8)
        s_mine, s_ref = opt.state_dict()["state"][0], ref.state_dict()["state"][0]
        assert s_mine["func_evals"] == s_ref["func_evals"]
        assert s_mine["n_iter"] == s_ref["n_iter"]
        assert len(s_mine["old_dirs"]) == len(s_ref["old_dirs"])
    assert set(s_mine) == set(s_ref) - {"al"}  # PyTorch also keeps its scratch list "al"
    final = float(_problem(gnn, ours))
    assert final < float(_problem(gnn, [gnn.tensor(a, dtype="float64") for a in inits]))


def test_lbfgs_needs_a_closure_and_checks_arguments() -> None:
    p = gnn.zeros(2, dtype="float64", requires_grad=True)
    with pytest.raises(RuntimeError, match="needs a closure"):
        optim.LBFGS([p]).step()
    with pytest.raises(ValueError, match="line_search_fn"):
        optim.LBFGS([p], line_search_fn="armijo")
    with pytest.raises(ValueError, match="history_size must be an integer >= 1"):
        optim.LBFGS([p], history_size=0)
    with pytest.raises(ValueError, match="one param group"):
        optim.LBFGS([{"params": [p]}, {"params": [gnn.zeros(1, requires_grad=True)]}])


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("Adadelta", {"rho": 1.5}, "rho must be in"),
        ("Adagrad", {"lr_decay": -1}, "lr_decay must be in"),
        ("NAdam", {"betas": (0.9,)}, "betas must be a pair"),
        ("RAdam", {"eps": -1.0}, "eps must be in"),
        ("NAdam", {"momentum_decay": -0.1}, "momentum_decay must be in"),
    ],
)
def test_bad_hyperparameters_are_refused(name: str, kwargs: dict, match: str) -> None:
    p = gnn.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match=match):
        getattr(optim, name)([p], **kwargs)


def test_new_optimizers_round_trip_their_state_dict() -> None:
    for name in ("Adadelta", "Adagrad", "NAdam", "RAdam"):
        p = gnn.tensor(np.arange(4.0), dtype="float64", requires_grad=True)
        opt = getattr(optim, name)([p], lr=0.1)
        p.grad = gnn.ones_like(p)
        opt.step()
        q = gnn.tensor(p.numpy().copy(), requires_grad=True)
        opt2 = getattr(optim, name)([q], lr=0.1)
        opt2.load_state_dict(opt.state_dict())
        p.grad = gnn.ones_like(p)
        q.grad = gnn.ones_like(q)
        opt.step()
        opt2.step()
        np.testing.assert_array_equal(p.numpy(), q.numpy())


@pytest.mark.parametrize("name", ["Adadelta", "Adagrad", "NAdam", "RAdam", "LBFGS"])
def test_new_optimizers_give_the_same_steps_on_every_device(name: str, device: str) -> None:
    rng = np.random.default_rng(5)
    w0 = rng.standard_normal((4, 3))
    x = rng.standard_normal((6, 4))
    y = rng.standard_normal((6, 3))

    def run(dev: str) -> np.ndarray:
        w = gnn.tensor(w0, dtype="float64", device=dev, requires_grad=True)
        xs, ys = gnn.tensor(x, device=dev), gnn.tensor(y, device=dev)
        kwargs = {"line_search_fn": "strong_wolfe", "max_iter": 5} if name == "LBFGS" else {}
        opt = getattr(optim, name)([w], **kwargs)

        def closure() -> gnn.Tensor:
            opt.zero_grad()
            loss = ((xs @ w).tanh() - ys).pow(2).mean()
            loss.backward()
            return loss

        for _ in range(3):
            opt.step(closure)
        return w.numpy()

    np.testing.assert_allclose(run(device), run("cpu"), rtol=1e-12, atol=1e-14)


def test_lbfgs_state_round_trips_and_resumes_from_pytorch_state(tmp_path) -> None:
    rng = np.random.default_rng(3)
    inits = [rng.standard_normal((3, 5)) * 0.5, rng.standard_normal(5) * 0.1,
             rng.standard_normal((5, 2)) * 0.5]  # fmt: skip
    kwargs = {"history_size": 4, "max_iter": 6, "line_search_fn": "strong_wolfe"}
    theirs = [torch.tensor(a, requires_grad=True) for a in inits]
    ref = torch.optim.LBFGS(theirs, **kwargs)

    def closure_theirs() -> object:
        ref.zero_grad()
        loss = _problem(torch, theirs)
        loss.backward()
        return loss

    ref.step(closure_theirs)
    # PyTorch's state, through a gnn file, into a gnn LBFGS at the same point
    gnn.save({"opt": ref.state_dict(), "params": [q.detach() for q in theirs]}, tmp_path / "c")
    ck = gnn.load(tmp_path / "c")
    ours = [gnn.tensor(a.numpy(), requires_grad=True) for a in ck["params"]]
    opt = optim.LBFGS(ours, **kwargs)
    opt.load_state_dict(ck["opt"])

    def closure_ours() -> gnn.Tensor:
        opt.zero_grad()
        loss = _problem(gnn, ours)
        loss.backward()
        return loss

    for _ in range(2):
        opt.step(closure_ours)
        ref.step(closure_theirs)
        for p, q in zip(ours, theirs):
            np.testing.assert_allclose(p.numpy(), q.detach().numpy(), rtol=0, atol=1e-9)
    # and gnn's own state through a file, into a fresh optimizer
    gnn.save(opt.state_dict(), tmp_path / "mine")
    again = optim.LBFGS(ours, **kwargs)
    again.load_state_dict(gnn.load(tmp_path / "mine"))
    assert again.state[ours[0]]["n_iter"] == opt.state[ours[0]]["n_iter"]
    with pytest.raises(ValueError, match="must be a float vector of the 30 parameter values"):
        bad = opt.state_dict()
        bad["state"][0]["d"] = gnn.zeros(3)
        optim.LBFGS(ours, **kwargs).load_state_dict(bad)


@pytest.mark.parametrize("name", ["Adadelta", "Adagrad", "NAdam", "RAdam"])
def test_resume_from_a_pytorch_optimizer_state(name: str, tmp_path) -> None:
    rng = np.random.default_rng(8)
    init = rng.standard_normal((3, 2))
    q = torch.tensor(init, requires_grad=True)
    ref = getattr(torch.optim, name)([q], lr=0.05, weight_decay=0.1)
    grads = rng.standard_normal((6, 3, 2))
    for g in grads[:3]:
        q.grad = torch.tensor(g)
        ref.step()
    gnn.save({"opt": ref.state_dict(), "w": q.detach()}, tmp_path / "ckpt")  # PyTorch -> gnn
    ck = gnn.load(tmp_path / "ckpt")
    p = gnn.tensor(ck["w"].numpy(), requires_grad=True)
    opt = getattr(optim, name)([p], lr=0.05, weight_decay=0.1)
    opt.load_state_dict(ck["opt"])
    assert isinstance(opt.state[p]["step"], int) and opt.state[p]["step"] == 3
    for g in grads[3:]:
        q.grad = torch.tensor(g)
        p.grad = gnn.tensor(g)
        ref.step()
        opt.step()
        np.testing.assert_allclose(p.numpy(), q.detach().numpy(), rtol=1e-12, atol=1e-14)
