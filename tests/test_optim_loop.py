"""The optimizer base loop: an optimizer writes only update(); the base skips parameters without
a gradient, creates state lazily, applies maximize, counts steps, and hands each group to
_update_group (the seam for a fused multi-tensor update)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import gnn
from gnn import optim
from gnn.tensor import Tensor


def _params(seed: int = 0) -> list[Tensor]:
    rng = np.random.default_rng(seed)
    return [gnn.tensor(rng.standard_normal(s), requires_grad=True) for s in [(3, 2), (2,), (4,)]]


def _set_grads(params: list[Tensor], seed: int) -> None:
    rng = np.random.default_rng(seed)
    for p in params:
        p.grad = gnn.tensor(rng.standard_normal(p.shape))


class SignDescent(optim.Optimizer):
    """A rule written only as update(): p -= lr * sign(g) * step, with a running sum of g."""

    def __init__(self, params: Any, lr: float = 0.1, maximize: bool = False) -> None:
        super().__init__(params, dict(lr=lr, weight_decay=0.0, maximize=maximize))

    def init_state(self, param: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        return {"step": 0, "total": self.zeros_state(param)}

    def update(
        self, param: Tensor, grad: Any, state: dict[str, Any], group: dict[str, Any]
    ) -> None:
        xp = param._be.xp
        state["total"].array += grad
        param.array -= group["lr"] * state["step"] * xp.sign(grad)


def test_a_rule_written_as_update_only() -> None:
    params = _params()
    before = [p.numpy().copy() for p in params]
    opt = SignDescent(params, lr=0.5)
    rng_grads = []
    for step in (1, 2):
        _set_grads(params, step)
        params[1].grad = None  # no gradient: skipped, gets no state
        rng_grads.append([None if p.grad is None else p.grad.numpy().copy() for p in params])
        opt.step()
    assert params[1] not in opt.state
    np.testing.assert_array_equal(params[1].numpy(), before[1])
    for i in (0, 2):
        g1, g2 = rng_grads[0][i], rng_grads[1][i]
        want = before[i] - 0.5 * 1 * np.sign(g1) - 0.5 * 2 * np.sign(g2)
        np.testing.assert_allclose(params[i].numpy(), want, rtol=0, atol=1e-15)
        assert opt.state[params[i]]["step"] == 2
        np.testing.assert_allclose(opt.state[params[i]]["total"].numpy(), g1 + g2)


def test_maximize_hands_update_the_negated_gradient() -> None:
    params = _params()
    _set_grads(params, 3)
    grads = [p.grad.numpy().copy() for p in params]
    opt = SignDescent(params, maximize=True)
    opt.step()
    for p, g in zip(params, grads):
        np.testing.assert_array_equal(opt.state[p]["total"].numpy(), -g)
        np.testing.assert_array_equal(p.grad.numpy(), g)  # the caller's gradient is untouched


class Recording(optim.Adam):
    """Adam whose _update_group records what the base loop hands it, then updates as usual."""

    calls: list

    def _update_group(self, group, params, grads, states) -> None:  # type: ignore[override]
        self.calls.append((group, list(params), [g.copy() for g in grads], list(states)))
        for p, g, s in zip(params, grads, states):
            self.update(p, g, s, group)


def test_update_group_gets_each_group_once_with_only_the_params_that_have_grads() -> None:
    params = _params()
    opt = Recording([{"params": params[:2]}, {"params": params[2:], "lr": 0.5}], maximize=True)
    opt.calls = []
    _set_grads(params, 1)
    params[0].grad = None
    opt.step()
    assert len(opt.calls) == 2
    (g0, p0, gr0, s0), (g1, p1, gr1, s1) = opt.calls
    assert g0 is opt.param_groups[0] and g1 is opt.param_groups[1]
    assert p0 == [params[1]] and p1 == [params[2]]
    np.testing.assert_array_equal(gr0[0], -params[1].grad.numpy())
    assert s0[0] is opt.state[params[1]] and s0[0]["step"] == 1
    params[1].grad = params[2].grad = None  # a group with no gradients is not handed over
    opt.calls = []
    opt.step()
    assert opt.calls == []


@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (optim.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
        (optim.Adam, {"amsgrad": True, "weight_decay": 0.1}),
        (optim.AdamW, {}),
        (optim.RMSprop, {"momentum": 0.5, "centered": True}),
        (optim.Adadelta, {"weight_decay": 0.1}),
        (optim.Adagrad, {"lr_decay": 0.1}),
        (optim.NAdam, {"decoupled_weight_decay": True, "weight_decay": 0.1}),
        (optim.RAdam, {}),
    ],
)
def test_a_fused_group_update_can_replace_the_per_parameter_loop(cls, kwargs) -> None:
    """Overriding _update_group (as a multi-tensor path will) sees exactly what update() sees."""

    class Fused(cls):  # type: ignore[misc, valid-type]
        def _update_group(self, group, params, grads, states) -> None:  # type: ignore[override]
            for p, g, s in reversed(list(zip(params, grads, states))):
                self.update(p, g, s, group)

    plain, fused = _params(), _params()
    a, b = cls(plain, **kwargs), Fused(fused, **kwargs)
    for step in range(1, 8):
        _set_grads(plain, step)
        _set_grads(fused, step)
        a.step()
        b.step()
    for p, q in zip(plain, fused):
        np.testing.assert_array_equal(p.numpy(), q.numpy())


def test_sgd_keeps_state_only_under_momentum() -> None:
    params = _params()
    _set_grads(params, 1)
    opt = optim.SGD(params, lr=0.1)
    opt.step()
    assert opt.state_dict()["state"] == {}
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    opt.step()
    assert set(opt.state_dict()["state"][0]) == {"momentum_buffer"}


@pytest.mark.parametrize(
    "cls, key",
    [
        (optim.Adadelta, "acc_delta"),
        (optim.Adagrad, "sum"),
        (optim.NAdam, "mu_product"),
        (optim.RAdam, "exp_avg_sq"),
        (optim.RAdam, "step"),
    ],
)
def test_load_state_dict_refuses_state_the_update_needs(cls, key) -> None:
    params = _params()
    _set_grads(params, 1)
    opt = cls(params)
    opt.step()
    sd = opt.state_dict()
    del sd["state"][0][key]
    fresh = cls(_params())
    with pytest.raises(ValueError, match=f"lacks '{key}'"):
        fresh.load_state_dict(sd)


def test_the_base_optimizer_names_what_is_missing() -> None:
    params = _params()
    _set_grads(params, 1)
    opt = optim.Optimizer(params, {"lr": 0.1})
    with pytest.raises(NotImplementedError, match="does not define update"):
        opt.step()
