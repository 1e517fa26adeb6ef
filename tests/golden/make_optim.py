"""Record PyTorch's optimizer steps and lr schedules as golden files for tests/test_golden_optim.py.

Run from the repo root with PyTorch installed (CPU is enough): python tests/golden/make_optim.py
Writes tests/golden/optim_steps.npz and tests/golden/optim_schedules.npz (no pickles: configs are
JSON strings). The suite reads these files and never imports torch.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).parent
STEPS = 6
SHAPES = [(3, 4), (4,)]

# (optimizer, kwargs of group 0, kwargs of group 1 or None for a single group)
OPTIMIZER_CASES = [
    ("SGD", {"lr": 0.1}, None),
    ("SGD", {"lr": 0.1, "momentum": 0.9}, None),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.05}, None),
    ("SGD", {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.1}, None),
    ("SGD", {"lr": 0.05, "momentum": 0.5, "maximize": True, "weight_decay": 0.02}, None),
    ("SGD", {"lr": 0.1, "momentum": 0.9}, {"lr": 0.01, "momentum": 0.0}),
    ("Adam", {}, None),
    ("Adam", {"lr": 0.01, "betas": [0.8, 0.99], "eps": 1e-6, "weight_decay": 0.1}, None),
    ("Adam", {"lr": 0.02, "amsgrad": True}, None),
    ("Adam", {"lr": 0.01, "amsgrad": True, "maximize": True, "weight_decay": 0.01}, None),
    ("Adam", {"lr": 0.01}, {"lr": 0.001, "betas": [0.5, 0.9]}),
    ("AdamW", {}, None),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True}, None),
    ("AdamW", {"lr": 0.02, "betas": [0.7, 0.95], "weight_decay": 0.3, "maximize": True}, None),
    ("RMSprop", {}, None),
    ("RMSprop", {"lr": 0.01, "momentum": 0.9}, None),
    ("RMSprop", {"lr": 0.01, "centered": True}, None),
    ("RMSprop", {"lr": 0.005, "alpha": 0.9, "eps": 1e-6, "momentum": 0.5, "centered": True,
                 "weight_decay": 0.1}, None),
    ("RMSprop", {"lr": 0.01, "maximize": True, "weight_decay": 0.05}, None),
]  # fmt: skip

# The float32 path: the same rules in single precision (compared with a float32 tolerance).
FLOAT32_CASES = [
    ("SGD", {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.1}, None),
    ("Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.01}, None),
    ("AdamW", {"lr": 0.02, "betas": [0.7, 0.95], "weight_decay": 0.3}, None),
    ("RMSprop", {"lr": 0.005, "alpha": 0.9, "momentum": 0.5, "centered": True}, None),
]

# (scheduler, kwargs, number of steps, group lrs); LambdaLR always gets lambda_lr below
SCHEDULER_CASES = [
    ("StepLR", {"step_size": 3, "gamma": 0.5}, 12, [0.1]),
    ("StepLR", {"step_size": 1, "gamma": 0.9}, 6, [0.1, 0.01]),
    ("ExponentialLR", {"gamma": 0.9}, 10, [0.1]),
    ("CosineAnnealingLR", {"T_max": 10, "eta_min": 0.001}, 25, [0.1, 0.05]),
    ("CosineAnnealingLR", {"T_max": 7}, 16, [0.3]),
    ("LambdaLR", {}, 8, [0.1, 0.2]),
]

# ReduceLROnPlateau is fed this metric sequence (falls, stalls, wiggles, rises).
METRICS = [1.0, 0.9, 0.9, 0.9, 0.9, 0.8, 0.80001, 0.8, 0.85, 0.9, 0.7, 0.7, 0.7, 0.7, 0.7, 0.69,
           0.69, 0.69, 0.69, 0.69, 0.5, 0.5, 0.5, 0.5, 0.5]  # fmt: skip
PLATEAU_CASES = [
    {},
    {"patience": 2},
    {"patience": 1, "factor": 0.5, "cooldown": 2},
    {"patience": 1, "factor": 0.5, "threshold": 0.05, "threshold_mode": "abs", "min_lr": 0.02},
    {"mode": "max", "patience": 2, "factor": 0.5},
    {"mode": "max", "patience": 0, "factor": 0.7, "threshold_mode": "abs", "threshold": 0.0},
    {"patience": 0, "factor": 0.5, "min_lr": [0.01, 0.001], "eps": 1e-3},
]


def lambda_lr(epoch: int) -> float:
    """The LambdaLR function the test uses too."""
    return 0.95**epoch / (1 + epoch % 3)


def record_optimizers() -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    rng = np.random.default_rng(1234)
    cases = [(*c, "float64") for c in OPTIMIZER_CASES] + [(*c, "float32") for c in FLOAT32_CASES]
    for i, (name, kw0, kw1, dtype) in enumerate(cases):
        init = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
        # Gradients vary in scale between steps so that amsgrad's maximum matters.
        grads = [[(rng.standard_normal(s) * (0.2 + 2 * rng.random())).astype(dtype)
                  for s in SHAPES] for _ in range(STEPS)]  # fmt: skip
        tdtype = getattr(torch, dtype)
        params = [torch.tensor(a, dtype=tdtype, requires_grad=True) for a in init]

        def fix(kw: dict) -> dict:
            return {k: (tuple(v) if k == "betas" else v) for k, v in kw.items()}

        if kw1 is None:
            opt = getattr(torch.optim, name)(params, **fix(kw0))
        else:
            opt = getattr(torch.optim, name)(
                [{"params": [params[0]], **fix(kw0)}, {"params": [params[1]], **fix(kw1)}]
            )
        history = []
        for step in range(STEPS):
            for p, g in zip(params, grads[step]):
                p.grad = torch.tensor(g, dtype=tdtype)
            opt.step()
            history.append([p.detach().numpy().copy() for p in params])
        config = {"name": name, "group0": kw0, "group1": kw1, "dtype": dtype}
        out[f"c{i}_config"] = np.array(json.dumps(config))
        for j in range(len(SHAPES)):
            out[f"c{i}_p{j}_init"] = init[j]
            out[f"c{i}_p{j}_grads"] = np.stack([grads[s][j] for s in range(STEPS)])
            out[f"c{i}_p{j}_params"] = np.stack([history[s][j] for s in range(STEPS)])
            for key, value in opt.state[params[j]].items():
                if key == "step":
                    out[f"c{i}_p{j}_state_step"] = np.array(float(value))
                elif value is not None:
                    out[f"c{i}_p{j}_state_{key}"] = value.numpy().copy()
    out["count"] = np.array(len(cases))
    return out


def record_schedulers() -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    sched = torch.optim.lr_scheduler
    for i, (name, kw, steps, lrs) in enumerate(SCHEDULER_CASES):
        groups = [{"params": [torch.zeros(1, requires_grad=True)], "lr": lr} for lr in lrs]
        opt = torch.optim.SGD(groups, lr=lrs[0])
        s = (
            sched.LambdaLR(opt, lambda_lr)
            if name == "LambdaLR"
            else getattr(sched, name)(opt, **kw)
        )
        seq = [s.get_last_lr()]
        for _ in range(steps):
            opt.step()
            s.step()
            seq.append(s.get_last_lr())
        out[f"s{i}_config"] = np.array(json.dumps({"name": name, "kwargs": kw, "lrs": lrs}))
        out[f"s{i}_lrs"] = np.array(seq, dtype=np.float64)
    out["count"] = np.array(len(SCHEDULER_CASES))
    out["metrics"] = np.array(METRICS)
    for i, kw in enumerate(PLATEAU_CASES):
        groups = [{"params": [torch.zeros(1, requires_grad=True)], "lr": lr} for lr in (0.1, 0.05)]
        opt = torch.optim.SGD(groups, lr=0.1)
        s = sched.ReduceLROnPlateau(opt, **kw)
        seq = []
        for m in METRICS:
            opt.step()
            s.step(m)
            seq.append([g["lr"] for g in opt.param_groups])
        out[f"r{i}_config"] = np.array(json.dumps(kw))
        out[f"r{i}_lrs"] = np.array(seq, dtype=np.float64)
    out["plateau_count"] = np.array(len(PLATEAU_CASES))
    assert all(math.isfinite(v) for v in METRICS)
    return out


def main() -> None:
    torch.manual_seed(0)
    np.savez_compressed(HERE / "optim_steps.npz", **record_optimizers())
    np.savez_compressed(HERE / "optim_schedules.npz", **record_schedulers())
    print(f"wrote optim_steps.npz and optim_schedules.npz with torch {torch.__version__}")


if __name__ == "__main__":
    main()
