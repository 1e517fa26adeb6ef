"""gnn.optim and gnn.nn.utils: hyperparameter checks, update rules against NumPy written out by
hand, param groups, state dicts, schedulers' state, gradient clipping and penalties.

(The update rules and schedules are also compared with PyTorch in test_golden_optim.py.)
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import gnn
from gnn import nn, optim
from gnn.backend import NumpyBackend
from gnn.optim import lr_scheduler
from gnn.testing import gradcheck


def _param(a: np.ndarray) -> gnn.Tensor:
    return gnn.tensor(np.array(a), requires_grad=True)


def _params(seed: int = 0, dtype: str = "float64") -> list[gnn.Tensor]:
    rng = np.random.default_rng(seed)
    return [
        gnn.tensor(rng.standard_normal(s), dtype=dtype, requires_grad=True) for s in [(3, 2), (2,)]
    ]


def _set_grads(params: list[gnn.Tensor], seed: int) -> None:
    rng = np.random.default_rng(seed)
    for p in params:
        p.grad = gnn.tensor(rng.standard_normal(p.shape), dtype=p.dtype)


# ---- hyperparameter checks -------------------------------------------------------------------

BAD = [
    (optim.SGD, {"lr": 0.0}, "lr must be in (0, inf)"),
    (optim.SGD, {"lr": -0.1}, "lr must be in (0, inf)"),
    (optim.SGD, {"lr": float("nan")}, "lr must be in"),
    (optim.SGD, {"momentum": -0.5}, "momentum must be in [0, inf)"),
    (optim.SGD, {"weight_decay": -1e-4}, "weight_decay must be in [0, inf)"),
    (optim.SGD, {"dampening": 1.5}, "dampening must be in [0, 1]"),
    (optim.SGD, {"nesterov": True}, "nesterov=True needs momentum > 0"),
    (optim.SGD, {"nesterov": True, "momentum": 0.9, "dampening": 0.1}, "dampening = 0"),
    (optim.Adam, {"lr": 0}, "Adam: lr must be in (0, inf)"),
    (optim.Adam, {"betas": (1.0, 0.999)}, "betas[0] must be in [0, 1)"),
    (optim.Adam, {"betas": (-0.1, 0.999)}, "betas[0] must be in [0, 1)"),
    (optim.Adam, {"betas": (0.9, 1.0)}, "betas[1] must be in [0, 1)"),
    (optim.Adam, {"betas": (0.9,)}, "betas must be a pair"),
    (optim.Adam, {"eps": -1e-8}, "eps must be in [0, inf)"),
    (optim.AdamW, {"weight_decay": -0.01}, "AdamW: weight_decay must be in [0, inf)"),
    (optim.AdamW, {"betas": (0.9, 2.0)}, "AdamW: betas[1] must be in [0, 1)"),
    (optim.RMSprop, {"alpha": 1.5}, "alpha must be in [0, 1]"),
    (optim.RMSprop, {"momentum": -1}, "RMSprop: momentum must be in [0, inf)"),
    (optim.RMSprop, {"eps": -1.0}, "RMSprop: eps must be in [0, inf)"),
    (optim.RMSprop, {"lr": -1.0}, "RMSprop: lr must be in (0, inf)"),
]


@pytest.mark.parametrize("cls, kwargs, message", BAD)
def test_bad_hyperparameters_fail_at_construction(cls, kwargs, message) -> None:
    with pytest.raises(ValueError) as err:
        cls(_params(), **kwargs)
    assert message in str(err.value)
    if "lr" in kwargs:
        assert repr(kwargs["lr"]) in str(err.value)  # says what it got


def test_bad_group_hyperparameters_fail_too() -> None:
    p = _params()
    with pytest.raises(ValueError, match="betas\\[0\\] must be in"):
        optim.Adam([{"params": [p[0]]}, {"params": [p[1]], "betas": (1.5, 0.9)}])
    opt = optim.SGD([p[0]], lr=0.1)
    with pytest.raises(ValueError, match="lr must be in"):
        opt.add_param_group({"params": [p[1]], "lr": -1})


def test_params_checks() -> None:
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    p = _params()
    with pytest.raises(TypeError, match="single Tensor"):
        optim.SGD(p[0], lr=0.1)
    with pytest.raises(ValueError, match="more than once"):
        optim.SGD([p[0], p[0]], lr=0.1)
    with pytest.raises(ValueError, match="more than once"):
        optim.SGD([{"params": [p[0]]}, {"params": [p[0], p[1]]}], lr=0.1)
    with pytest.raises(ValueError, match="does not require grad"):
        optim.Adam([gnn.zeros(3)])


def test_defaults_follow_pytorch() -> None:
    p = _params()
    assert optim.SGD(p).defaults["lr"] == 1e-3
    adam = optim.Adam(p).defaults
    assert (adam["lr"], adam["betas"], adam["eps"], adam["weight_decay"]) == (
        1e-3, (0.9, 0.999), 1e-8, 0.0,
    )  # fmt: skip
    assert optim.AdamW(p).defaults["weight_decay"] == 1e-2
    rms = optim.RMSprop(p).defaults
    assert (rms["lr"], rms["alpha"], rms["eps"], rms["momentum"], rms["centered"]) == (
        1e-2, 0.99, 1e-8, 0.0, False,
    )  # fmt: skip


# ---- update rules written out in NumPy --------------------------------------------------------


def _numpy_adam(p, grads, lr, b1, b2, eps, wd, decoupled):
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        if decoupled:
            p = p * (1 - lr * wd)
        else:
            g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p


@pytest.mark.parametrize("cls, decoupled", [(optim.Adam, False), (optim.AdamW, True)])
@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-12), ("float32", 2e-5)])
def test_adam_against_numpy(cls, decoupled, dtype, rtol) -> None:
    rng = np.random.default_rng(3)
    p0 = rng.standard_normal((4, 3))
    grads = [rng.standard_normal((4, 3)) for _ in range(5)]
    p = gnn.tensor(p0, dtype=dtype, requires_grad=True)
    opt = cls([p], lr=0.05, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)
    for g in grads:
        p.grad = gnn.tensor(g, dtype=dtype)
        opt.step()
    want = _numpy_adam(p0, grads, 0.05, 0.8, 0.95, 1e-6, 0.1, decoupled)
    assert p.dtype == np.dtype(dtype)
    assert opt.state[p]["exp_avg"].dtype == np.dtype(dtype)
    np.testing.assert_allclose(p.numpy(), want, rtol=rtol, atol=rtol)


def test_sgd_nesterov_against_numpy() -> None:
    rng = np.random.default_rng(4)
    p0 = rng.standard_normal(5)
    grads = [rng.standard_normal(5) for _ in range(4)]
    p = gnn.tensor(p0, dtype="float64", requires_grad=True)
    opt = optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)
    want, buf = p0.copy(), None
    for g in grads:
        p.grad = gnn.tensor(g, dtype="float64")
        opt.step()
        d = g + 0.01 * want
        buf = d.copy() if buf is None else 0.9 * buf + d
        want = want - 0.1 * (d + 0.9 * buf)
    np.testing.assert_allclose(p.numpy(), want, rtol=1e-13)


def test_rmsprop_centered_momentum_against_numpy() -> None:
    rng = np.random.default_rng(5)
    p0 = rng.standard_normal(6)
    grads = [rng.standard_normal(6) for _ in range(4)]
    p = gnn.tensor(p0, dtype="float64", requires_grad=True)
    opt = optim.RMSprop([p], lr=0.01, alpha=0.9, eps=1e-5, momentum=0.5, centered=True)
    want = p0.copy()
    sq, ga, buf = np.zeros(6), np.zeros(6), np.zeros(6)
    for g in grads:
        p.grad = gnn.tensor(g, dtype="float64")
        opt.step()
        sq = 0.9 * sq + 0.1 * g * g
        ga = 0.9 * ga + 0.1 * g
        buf = 0.5 * buf + g / (np.sqrt(sq - ga * ga) + 1e-5)
        want = want - 0.01 * buf
    np.testing.assert_allclose(p.numpy(), want, rtol=1e-12)


def test_maximize_ascends() -> None:
    p = gnn.tensor([1.0, 2.0], dtype="float64", requires_grad=True)
    opt = optim.SGD([p], lr=0.5, maximize=True)
    p.grad = gnn.tensor([1.0, -1.0], dtype="float64")
    opt.step()
    np.testing.assert_array_equal(p.numpy(), [1.5, 1.5])


def test_update_is_in_place_and_skips_params_without_grad() -> None:
    a, b = _params()
    data_a = a.array
    opt = optim.Adam([a, b], lr=0.1)
    a.grad = gnn.ones_like(a)
    before_b = b.numpy().copy()
    opt.step()
    assert a.array is data_a  # the same array: views and other holders see the update
    assert b not in opt.state
    np.testing.assert_array_equal(b.numpy(), before_b)


@pytest.mark.parametrize(
    "make",
    [
        lambda p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1),
        lambda p: optim.Adam(p, lr=0.1, amsgrad=True, weight_decay=0.1, maximize=True),
        lambda p: optim.AdamW(p, lr=0.1),
        lambda p: optim.RMSprop(p, lr=0.1, momentum=0.9, centered=True, weight_decay=0.1),
    ],
)
def test_step_never_reads_back_to_the_host(make, monkeypatch) -> None:
    params = _params(dtype="float32")
    opt = make(params)

    def refuse(self, a):
        raise AssertionError("optimizer step read a device array back to the host")

    monkeypatch.setattr(NumpyBackend, "to_numpy", refuse)
    for seed in range(3):
        _set_grads(params, seed)
        opt.step()
        nn.utils.clip_grad_norm_(params, 0.5)
        nn.utils.clip_grad_value_(params, 0.1)


def test_closure_and_zero_grad() -> None:
    p = gnn.tensor([3.0], requires_grad=True)
    opt = optim.SGD([p], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert float(loss) == pytest.approx(9.0)
    assert p.item() == pytest.approx(3.0 - 0.1 * 6.0)
    opt.zero_grad(set_to_none=False)
    assert p.grad.item() == 0.0
    opt.zero_grad()
    assert p.grad is None


def test_param_groups_have_their_own_hyperparameters() -> None:
    a, b = _params()
    opt = optim.SGD([{"params": [a]}, {"params": b, "lr": 1.0}], lr=0.1, momentum=0.5)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 1.0]
    assert opt.param_groups[1]["momentum"] == 0.5
    a0, b0 = a.numpy().copy(), b.numpy().copy()
    a.grad, b.grad = gnn.ones_like(a), gnn.ones_like(b)
    opt.step()
    np.testing.assert_allclose(a.numpy(), a0 - 0.1)
    np.testing.assert_allclose(b.numpy(), b0 - 1.0)
    c = gnn.zeros(2, requires_grad=True)
    opt.add_param_group({"params": [c], "lr": 0.01})
    assert opt.param_groups[2]["momentum"] == 0.5


# ---- state dicts -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (optim.SGD, {"lr": 0.1, "momentum": 0.9}),
        (optim.Adam, {"lr": 0.01, "amsgrad": True, "betas": (0.8, 0.9)}),
        (optim.AdamW, {"lr": 0.01}),
        (optim.RMSprop, {"lr": 0.01, "centered": True, "momentum": 0.3}),
    ],
)
def test_state_dict_round_trip_continues_identically(cls, kwargs) -> None:
    a = _params(seed=1)
    opt_a = cls(a, **kwargs)
    for s in range(3):
        _set_grads(a, s)
        opt_a.step()
    sd = opt_a.state_dict()
    # Through JSON and host arrays, as a checkpoint stores it.
    groups = json.loads(json.dumps(sd["param_groups"]))
    state = {
        i: {k: (v.numpy().copy() if isinstance(v, gnn.Tensor) else v) for k, v in st.items()}
        for i, st in sd["state"].items()
    }
    b = [gnn.tensor(p.numpy().copy(), requires_grad=True) for p in a]
    opt_b = cls(b, lr=0.5)  # other hyperparameters: the state dict brings the saved ones
    opt_b.load_state_dict({"state": state, "param_groups": groups})
    if "betas" in kwargs:
        assert opt_b.param_groups[0]["betas"] == (0.8, 0.9)  # a tuple again
    for value in state[0].values():  # loading copied: no aliasing with the given arrays
        if isinstance(value, np.ndarray):
            value += 1.0
    for s in range(3, 6):
        _set_grads(a, s)
        _set_grads(b, s)
        opt_a.step()
        opt_b.step()
    for pa, pb in zip(a, b):
        np.testing.assert_array_equal(pa.numpy(), pb.numpy())


def test_state_dict_uses_pytorch_layout() -> None:
    a = _params()
    opt = optim.Adam([{"params": [a[0]]}, {"params": [a[1]], "lr": 0.1}], lr=0.01)
    _set_grads(a, 0)
    opt.step()
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0], [1]]
    assert set(sd["state"][1]) == {"step", "exp_avg", "exp_avg_sq"}
    assert sd["state"][1]["step"] == 1


def test_load_state_dict_checks_shapes_and_groups() -> None:
    a = _params()
    opt = optim.SGD(a, lr=0.1, momentum=0.9)
    _set_grads(a, 0)
    opt.step()
    sd = opt.state_dict()
    other = optim.SGD([{"params": [a[0]]}, {"params": [a[1]]}], lr=0.1)
    with pytest.raises(ValueError, match="1 param groups saved, the optimizer has 2"):
        other.load_state_dict(sd)
    swapped = optim.SGD([a[1], a[0]], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="momentum_buffer"):
        swapped.load_state_dict(sd)


# ---- schedulers ------------------------------------------------------------------------------


def _opt(lrs=(0.1,)) -> optim.SGD:
    return optim.SGD([{"params": [gnn.zeros(1, requires_grad=True)], "lr": lr} for lr in lrs])


def test_step_lr_and_exponential_by_hand() -> None:
    opt = _opt((0.1, 1.0))
    sched = lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    seen = [sched.get_last_lr()]
    for _ in range(5):
        sched.step()
        seen.append(sched.get_last_lr())
    want = [[0.1 * 0.5 ** (e // 2), 1.0 * 0.5 ** (e // 2)] for e in range(6)]
    np.testing.assert_allclose(seen, want, rtol=1e-15)
    opt = _opt()
    sched = lr_scheduler.ExponentialLR(opt, gamma=0.5)
    for _ in range(3):
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.125)


def test_cosine_by_hand() -> None:
    opt = _opt()
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=4, eta_min=0.01)
    got = [sched.get_last_lr()[0]]
    for _ in range(8):
        sched.step()
        got.append(sched.get_last_lr()[0])
    want = [0.01 + 0.09 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(9)]
    np.testing.assert_allclose(got, want, rtol=1e-14)
    assert got[4] == pytest.approx(0.01) and got[8] == pytest.approx(0.1)


def test_lambda_lr_per_group() -> None:
    opt = _opt((0.1, 0.2))
    sched = lr_scheduler.LambdaLR(opt, [lambda e: 1.0 / (e + 1), lambda e: 0.5**e])
    sched.step()
    sched.step()
    assert sched.get_last_lr() == pytest.approx([0.1 / 3, 0.2 * 0.25])
    with pytest.raises(ValueError, match="expected 2 lr_lambdas"):
        lr_scheduler.LambdaLR(_opt((0.1, 0.2)), [lambda e: 1.0])


def test_plateau_by_hand() -> None:
    opt = _opt()
    sched = lr_scheduler.ReduceLROnPlateau(opt, patience=1, factor=0.5, cooldown=1, min_lr=0.02)
    lrs = []
    for _ in range(12):
        sched.step(gnn.tensor(1.0))  # a 0-d Tensor works like a number
        lrs.append(sched.get_last_lr()[0])
    # Epoch 1 sets the best; 2 is bad; 3 is the 2nd bad epoch (> patience): cut, then one epoch
    # of cooldown (4) where bad epochs do not count; 5 bad, 6 cut, ...; min_lr stops at 0.02.
    want = [0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.02, 0.02, 0.02, 0.02]
    assert lrs == pytest.approx(want, rel=1e-15)


@pytest.mark.parametrize(
    "make, kwargs, message",
    [
        (lr_scheduler.StepLR, {"step_size": 0}, "step_size must be an integer >= 1"),
        (lr_scheduler.StepLR, {"step_size": 2, "gamma": -1.0}, "gamma must be in (0, inf)"),
        (lr_scheduler.CosineAnnealingLR, {"T_max": 0}, "T_max must be an integer >= 1"),
        (lr_scheduler.ReduceLROnPlateau, {"factor": 1.0}, "factor must be in (0, 1)"),
        (lr_scheduler.ReduceLROnPlateau, {"mode": "up"}, "mode must be 'min' or 'max'"),
        (lr_scheduler.ReduceLROnPlateau, {"threshold_mode": "x"}, "threshold_mode must be"),
        (lr_scheduler.ReduceLROnPlateau, {"patience": -1}, "patience must be an integer >= 0"),
    ],
)
def test_bad_scheduler_arguments(make, kwargs, message) -> None:
    with pytest.raises(ValueError) as err:
        make(_opt(), **kwargs)
    assert message in str(err.value)


@pytest.mark.parametrize(
    "make, metric",
    [
        (lambda o: lr_scheduler.StepLR(o, step_size=3, gamma=0.7), False),
        (lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=5, eta_min=0.001), False),
        (lambda o: lr_scheduler.ExponentialLR(o, gamma=0.9), False),
        (lambda o: lr_scheduler.LambdaLR(o, lambda e: 1.0 / (1 + e)), False),
        (lambda o: lr_scheduler.ReduceLROnPlateau(o, patience=1, mode="max"), True),
    ],
)
def test_scheduler_state_dict_round_trip(make, metric) -> None:
    metrics = [0.5, 0.4, 0.4, 0.3, 0.3, 0.3, 0.2, 0.2, 0.2, 0.2]
    opt_a = _opt((0.1, 0.3))
    a = make(opt_a)
    for m in metrics[:4]:
        a.step(m) if metric else a.step()
    sd = json.loads(json.dumps(a.state_dict()))  # JSON-safe, as checkpoints store it
    opt_b = _opt((0.1, 0.3))
    opt_b.load_state_dict(opt_a.state_dict())
    b = make(opt_b)
    b.load_state_dict(sd)
    for m in metrics[4:]:
        for s in (a, b):
            s.step(m) if metric else s.step()
        assert a.get_last_lr() == b.get_last_lr()
        assert [g["lr"] for g in opt_a.param_groups] == [g["lr"] for g in opt_b.param_groups]


# ---- gradient clipping and penalties ---------------------------------------------------------


def _with_grads(arrays: list[np.ndarray]) -> list[gnn.Tensor]:
    out = []
    for a in arrays:
        p = gnn.tensor(np.zeros_like(a), dtype="float64", requires_grad=True)
        p.grad = gnn.tensor(a, dtype="float64")
        out.append(p)
    return out


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, float("inf")])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_against_numpy(norm_type, max_norm) -> None:
    rng = np.random.default_rng(7)
    grads = [rng.standard_normal((4, 3)), rng.standard_normal(5)]
    params = _with_grads(grads)
    flat = np.concatenate([g.ravel() for g in grads])
    if math.isinf(norm_type):
        total = np.abs(flat).max()
    else:
        total = (np.abs(flat) ** norm_type).sum() ** (1 / norm_type)
    coef = min(max_norm / (total + 1e-6), 1.0)
    got = nn.utils.clip_grad_norm_(params, max_norm, norm_type=norm_type)
    assert isinstance(got, gnn.Tensor) and got.shape == ()
    assert float(got) == pytest.approx(total, rel=1e-12)
    for p, g in zip(params, grads):
        np.testing.assert_allclose(p.grad.numpy(), g * coef, rtol=1e-12)


def test_clip_grad_norm_edge_cases() -> None:
    p = gnn.zeros(3, requires_grad=True)
    assert float(nn.utils.clip_grad_norm_([p], 1.0)) == 0.0  # no gradients
    p.grad = gnn.tensor([3.0, 4.0, 0.0])
    total = nn.utils.clip_grad_norm_(p, 1.0)  # a single Tensor works too
    assert float(total) == pytest.approx(5.0)
    np.testing.assert_allclose(p.grad.numpy(), [0.6, 0.8, 0.0], rtol=1e-5)
    p.grad = gnn.tensor([np.inf, 1.0, 0.0])
    with pytest.raises(RuntimeError, match="total norm of order 2.0 of the gradients is inf"):
        nn.utils.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    with pytest.raises(ValueError, match="norm_type must be >= 0"):
        nn.utils.clip_grad_norm_([p], 1.0, norm_type=-2)
    half = gnn.zeros(2, dtype="float16", requires_grad=True)
    half.grad = gnn.tensor([300.0, 400.0], dtype="float16")  # squares overflow float16
    assert float(nn.utils.clip_grad_norm_([half], 1e6)) == pytest.approx(500.0)


def test_clip_grad_value() -> None:
    params = _with_grads([np.array([-3.0, 0.5, 2.0]), np.array([[0.1, -0.2]])])
    nn.utils.clip_grad_value_(params, 1.0)
    np.testing.assert_array_equal(params[0].grad.numpy(), [-1.0, 0.5, 1.0])
    np.testing.assert_array_equal(params[1].grad.numpy(), [[0.1, -0.2]])
    with pytest.raises(ValueError, match="clip_value must be >= 0"):
        nn.utils.clip_grad_value_(params, -1.0)


def test_penalties_values_and_gradients() -> None:
    rng = np.random.default_rng(8)
    arrays = [rng.standard_normal((3, 2)), rng.standard_normal(4)]
    params = [gnn.tensor(a, dtype="float64", requires_grad=True) for a in arrays]
    l1 = nn.utils.l1_penalty(params, 0.01)
    l2 = nn.utils.l2_penalty(params, 0.1)
    assert float(l1) == pytest.approx(0.01 * sum(np.abs(a).sum() for a in arrays), rel=1e-12)
    assert float(l2) == pytest.approx(0.1 * sum((a * a).sum() for a in arrays), rel=1e-12)
    (l1 + l2).backward()
    for p, a in zip(params, arrays):
        np.testing.assert_allclose(p.grad.numpy(), 0.01 * np.sign(a) + 0.2 * a, rtol=1e-12)
    gradcheck(lambda x, y: nn.utils.l2_penalty([x, y], 0.3), [gnn.tensor(a) for a in arrays])
    with pytest.raises(ValueError, match="weight must be >= 0"):
        nn.utils.l1_penalty(params, -1.0)


def test_parameter_vector_round_trip() -> None:
    params = _params()
    vec = nn.utils.parameters_to_vector(params)
    assert vec.shape == (8,)
    nn.utils.vector_to_parameters(vec * 2.0, params)
    np.testing.assert_allclose(nn.utils.parameters_to_vector(params).numpy(), vec.numpy() * 2)
    with pytest.raises(ValueError, match="8 elements"):
        nn.utils.vector_to_parameters(gnn.zeros(7), params)


@pytest.mark.parametrize(
    "make",
    [
        lambda p: optim.Adam(p, lr=0.01, foreach=False, amsgrad=True),
        lambda p: optim.Adam(p, lr=0.01, weight_decay=0.1),  # flat on CUDA: float64 has no kernel
        lambda p: optim.Adagrad(p, lr=0.1, lr_decay=0.5),
        lambda p: optim.NAdam(p, lr=0.01, weight_decay=0.1, decoupled_weight_decay=True),
        lambda p: optim.RAdam(p, lr=0.01, betas=(0.5, 0.9)),  # rectified from step 3
    ],
    ids=["adam-1by1", "adam-flat", "adagrad-decay", "nadam", "radam"],
)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_step_counts_on_the_device_give_the_cpus_steps(make, dtype: str, device: str) -> None:
    """On a GPU these rules make their step-dependent numbers on the device (for CUDA graphs);
    the steps are the CPU's host arithmetic's, in the parameters' dtype, and so is the state."""
    rng = np.random.default_rng(4)
    w0, grads = rng.standard_normal((3, 4)), rng.standard_normal((8, 3, 4))

    def run(dev: str) -> tuple:
        w = gnn.tensor(w0, dtype=dtype, device=dev, requires_grad=True)
        opt = make([w])
        for g in grads:
            w.grad = gnn.tensor(g, dtype=dtype, device=dev)
            opt.step()
        return w.numpy(), opt.state_dict()["state"][0]

    (got, got_state), (want, want_state) = run(device), run("cpu")
    assert got.dtype == np.dtype(dtype)
    tol = {"float64": 1e-12, "float32": 1e-5}[dtype]
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    assert got_state["step"] == want_state["step"] == 8
    for k, v in want_state.items():
        if isinstance(v, float):  # NAdam's mu_product, read back from the device
            assert got_state[k] == pytest.approx(v, rel=1e-12)
