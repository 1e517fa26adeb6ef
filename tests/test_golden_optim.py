"""gnn.optim against PyTorch: parameters after each of several steps, final optimizer state,
and every scheduler's lr sequence, from golden files made by tests/golden/make_optim.py.

The files hold NumPy arrays and JSON strings only; this test never imports torch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import gnn
from gnn import optim
from gnn.optim import lr_scheduler

GOLDEN = Path(__file__).parent / "golden"
STEPS = np.load(GOLDEN / "optim_steps.npz", allow_pickle=False)
SCHEDULES = np.load(GOLDEN / "optim_schedules.npz", allow_pickle=False)


def lambda_lr(epoch: int) -> float:
    """The same function make_optim.py gave PyTorch's LambdaLR."""
    return 0.95**epoch / (1 + epoch % 3)


TOL = {"float64": {"rtol": 1e-11, "atol": 1e-13}, "float32": {"rtol": 2e-6, "atol": 1e-7}}


def _case_ids(prefix: str, count: int) -> list[str]:
    out = []
    for i in range(count):
        cfg = json.loads(str(STEPS[f"{prefix}{i}_config"]))
        dtype = cfg.get("dtype", "float64")
        out.append(f"{i}-{cfg['name']}-{dtype}-{json.dumps(cfg['group0'], sort_keys=True)}")
    return out


@pytest.mark.parametrize(
    "case", range(int(STEPS["count"])), ids=_case_ids("c", int(STEPS["count"]))
)
def test_optimizer_matches_pytorch(case: int) -> None:
    cfg = json.loads(str(STEPS[f"c{case}_config"]))
    dtype = cfg.get("dtype", "float64")
    tol = TOL[dtype]
    params = [gnn.tensor(STEPS[f"c{case}_p{j}_init"], dtype=dtype, requires_grad=True)
              for j in range(2)]  # fmt: skip
    cls = getattr(optim, cfg["name"])
    if cfg["group1"] is None:
        opt = cls(params, **cfg["group0"])
    else:
        opt = cls(
            [{"params": [params[0]], **cfg["group0"]}, {"params": [params[1]], **cfg["group1"]}]
        )
    grads = [STEPS[f"c{case}_p{j}_grads"] for j in range(2)]
    want = [STEPS[f"c{case}_p{j}_params"] for j in range(2)]
    for step in range(grads[0].shape[0]):
        for j, p in enumerate(params):
            p.grad = gnn.tensor(grads[j][step], dtype=dtype)
        opt.step()
        for j, p in enumerate(params):
            assert p.dtype == np.dtype(dtype)
            np.testing.assert_allclose(
                p.numpy(), want[j][step], **tol,
                err_msg=f"{cfg['name']} param {j} after step {step + 1}",
            )  # fmt: skip
    # The state has PyTorch's names and values.
    sd = opt.state_dict()["state"]
    for j in range(2):
        prefix = f"c{case}_p{j}_state_"
        names = {k[len(prefix) :] for k in STEPS.files if k.startswith(prefix)}
        assert set(sd.get(j, {})) == names
        for name in names:
            got = sd[j][name]
            got = float(got) if name == "step" else got.numpy()
            np.testing.assert_allclose(got, STEPS[prefix + name], **tol)


def _make_scheduler(name: str, opt: optim.Optimizer, kwargs: dict) -> lr_scheduler.LRScheduler:
    if name == "LambdaLR":
        return lr_scheduler.LambdaLR(opt, lambda_lr)
    return getattr(lr_scheduler, name)(opt, **kwargs)


@pytest.mark.parametrize("case", range(int(SCHEDULES["count"])))
def test_scheduler_matches_pytorch(case: int) -> None:
    cfg = json.loads(str(SCHEDULES[f"s{case}_config"]))
    groups = [{"params": [gnn.zeros(1, requires_grad=True)], "lr": lr} for lr in cfg["lrs"]]
    opt = optim.SGD(groups, lr=cfg["lrs"][0])
    sched = _make_scheduler(cfg["name"], opt, cfg["kwargs"])
    got = [sched.get_last_lr()]
    for _ in range(len(SCHEDULES[f"s{case}_lrs"]) - 1):
        opt.step()
        sched.step()
        got.append(sched.get_last_lr())
    np.testing.assert_allclose(np.array(got), SCHEDULES[f"s{case}_lrs"], rtol=1e-12, atol=1e-15)
    assert [g["lr"] for g in opt.param_groups] == got[-1]


@pytest.mark.parametrize("case", range(int(SCHEDULES["plateau_count"])))
def test_reduce_on_plateau_matches_pytorch(case: int) -> None:
    kwargs = json.loads(str(SCHEDULES[f"r{case}_config"]))
    groups = [{"params": [gnn.zeros(1, requires_grad=True)], "lr": lr} for lr in (0.1, 0.05)]
    opt = optim.SGD(groups, lr=0.1)
    sched = lr_scheduler.ReduceLROnPlateau(opt, **kwargs)
    got = []
    for m in SCHEDULES["metrics"]:
        opt.step()
        sched.step(float(m))
        got.append([g["lr"] for g in opt.param_groups])
        assert sched.get_last_lr() == got[-1]
    np.testing.assert_allclose(np.array(got), SCHEDULES[f"r{case}_lrs"], rtol=1e-12, atol=0)
