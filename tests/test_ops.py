"""Tests generated from the op table (tests/op_table.py), and random compositions of the ops.

For every row and case: the forward against the NumPy reference in float32 and float64 on each
device, through the function and the Tensor method; the float64 gradient against central
differences (gnn.testing.gradcheck); and the gradients on each device, in float32 (and float64
on the GPU), against the CPU's float64 ones. Empty and one-element shapes are cases like any
other; test_every_row_covers_empty_and_one_element_shapes makes sure each row has them.
"""

from __future__ import annotations

import operator
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from op_table import (
    ROWS,
    Case,
    OpRow,
    case,
    mask,
    np_gelu,
    np_log_softmax,
    np_sigmoid,
    np_softmax,
)

import gnn
import gnn.functional as F
from gnn.autograd import Function
from gnn.tensor import Tensor
from gnn.testing import gradcheck

# NaN results that PyTorch gives too (mean of nothing, var of one element) make NumPy warn.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

CASES = [pytest.param(row, c, id=f"{row.id}-{c.id}") for row in ROWS for c in row.cases]
GRAD_CASES = [
    pytest.param(row, c, id=f"{row.id}-{c.id}")
    for row in ROWS
    if row.differentiable
    for c in row.cases
]
DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]


# ---- building the inputs of a case ---------------------------------------------------------------


def input_values(row: OpRow, c: Case) -> list:
    """float64 arrays from the row's domain (one per shape in c.inputs), Python numbers as given;
    the same values for every dtype and device."""
    rng = np.random.default_rng(zlib.crc32(f"{row.id}-{c.id}".encode()))
    return [
        row.domain_of(i)(rng, spec) if isinstance(spec, tuple) else spec
        for i, spec in enumerate(c.inputs)
    ]


def to_gnn(v: Any, dtype: Any, device: str, requires_grad: bool = False) -> Any:
    """NumPy arrays as gnn tensors on `device` (floating ones in `dtype`), inside tuples too."""
    if isinstance(v, np.ndarray):
        if v.dtype.kind == "f":
            return gnn.tensor(v.astype(dtype), device=device, requires_grad=requires_grad)
        return gnn.tensor(v, device=device)
    if isinstance(v, tuple):
        return tuple(to_gnn(i, dtype, device) for i in v)
    return v


def to_ref(v: Any, dtype: Any) -> Any:
    """What the NumPy reference sees: floating arrays rounded to `dtype`, then in float64."""
    if isinstance(v, np.ndarray) and v.dtype.kind == "f":
        return v.astype(dtype).astype(np.float64)
    if isinstance(v, tuple):
        return tuple(to_ref(i, dtype) for i in v)
    return v


@dataclass
class Call:
    """One case of one row, ready to run in one dtype on one device."""

    inputs: list  # Tensors (requires_grad when the row is differentiable) and Python numbers
    args: tuple
    kwargs: dict

    @property
    def tensors(self) -> list[Tensor]:
        return [t for t in self.inputs if isinstance(t, Tensor)]

    def run(self, impl: Callable) -> Any:
        return impl(*self.inputs, *self.args, **self.kwargs)

    def of_tensors(self, impl: Callable) -> Callable:
        """impl as a function of the inputs alone (the other arguments bound), for gradcheck."""
        return lambda *inputs: impl(*inputs, *self.args, **self.kwargs)


def make_call(row: OpRow, c: Case, values: list, dtype: Any, device: str) -> Call:
    inputs = [to_gnn(v, dtype, device, requires_grad=row.differentiable) for v in values]
    kwargs = {k: to_gnn(v, dtype, device) for k, v in c.kwargs.items()}
    return Call(inputs, to_gnn(c.args, dtype, device), kwargs)


def reference(row: OpRow, c: Case, values: list, dtype: Any) -> np.ndarray:
    inputs = [to_ref(v, dtype) for v in values]
    kwargs = {k: to_ref(v, dtype) for k, v in c.kwargs.items()}
    with np.errstate(all="ignore"):
        return np.asarray(row.ref(*inputs, *to_ref(c.args, dtype), **kwargs))


def implementations(row: OpRow) -> list[tuple[str, Callable]]:
    """The function of gnn.functional, and the Tensor method or operator where PyTorch has one."""
    impls = [(f"F.{row.op}", row.call)]
    if row.method is not None:
        impls.append(("method", row.method))
    return impls


def tolerance(row: OpRow, dtype: Any) -> dict:
    rtol, atol = row.tol32 if dtype == np.float32 else row.tol64
    return {"rtol": rtol, "atol": atol}


# ---- the checks (functions, so that test_the_checks_can_fail can run them on broken ops) ---------


def check_forward(row: OpRow, c: Case, dtype: Any, device: str) -> None:
    values = input_values(row, c)
    expected = reference(row, c, values, dtype)
    for label, impl in implementations(row):
        out = make_call(row, c, values, dtype, device).run(impl)
        where = f"{row.id} via {label} on {c.id} ({np.dtype(dtype).name}, {device})"
        assert isinstance(out, Tensor), f"{where}: returned {type(out).__name__}"
        assert out.device.type == device, f"{where}: output on {out.device}"
        assert out.shape == expected.shape, f"{where}: shape {out.shape} != {expected.shape}"
        if expected.dtype.kind == "f":
            want = np.dtype(row.out_dtype or dtype)
            assert out.dtype == want, f"{where}: dtype {out.dtype}, expected {want}"
            np.testing.assert_allclose(
                out.numpy().astype(np.float64),
                expected,
                equal_nan=True,
                err_msg=where,
                **tolerance(row, dtype),
            )
        else:
            assert out.dtype.kind == expected.dtype.kind, f"{where}: dtype {out.dtype}"
            np.testing.assert_array_equal(out.numpy(), expected, err_msg=where)


def check_gradients(row: OpRow, c: Case) -> None:
    values = input_values(row, c)
    for _label, impl in implementations(row):
        call = make_call(row, c, values, np.float64, "cpu")
        assert gradcheck(call.of_tensors(impl), call.inputs)


def forward_backward(row: OpRow, c: Case, values: list, dtype: Any, device: str):
    """The output and the input gradients (NumPy arrays) for a fixed random output gradient."""
    call = make_call(row, c, values, dtype, device)
    out = call.run(row.call)
    gy = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
    out.backward(gnn.tensor(gy, device=device))
    grads = []
    for i, t in enumerate(call.tensors):
        assert t.grad is not None, f"{row.id} on {c.id}: input {i} got no gradient"
        assert t.grad.shape == t.shape, f"{row.id}: input {i} gradient shape {t.grad.shape}"
        assert t.grad.dtype == t.dtype, f"{row.id}: input {i} gradient dtype {t.grad.dtype}"
        assert t.grad.device == t.device, f"{row.id}: input {i} gradient on {t.grad.device}"
        grads.append(t.grad.numpy().astype(np.float64))
    return out.numpy().astype(np.float64), grads


def check_against_cpu_float64(row: OpRow, c: Case, device: str) -> None:
    values = input_values(row, c)
    gold_out, gold_grads = forward_backward(row, c, values, np.float64, "cpu")
    dtypes = [np.float32] if device == "cpu" else [np.float32, np.float64]
    for dtype in dtypes:
        out, grads = forward_backward(row, c, values, dtype, device)
        where = f"{row.id} on {c.id} ({np.dtype(dtype).name}, {device})"
        tol = tolerance(row, dtype)
        np.testing.assert_allclose(out, gold_out, equal_nan=True, err_msg=where, **tol)
        for i, (g, gold) in enumerate(zip(grads, gold_grads)):
            scale = max(1.0, float(np.abs(gold).max(initial=0.0)))
            np.testing.assert_allclose(
                g,
                gold,
                rtol=tol["rtol"] * 5,
                atol=tol["atol"] * 5 * scale,
                equal_nan=True,
                err_msg=f"{where}: gradient of input {i}",
            )


# ---- the generated tests -------------------------------------------------------------------------


def expect_known_bug(request: pytest.FixtureRequest, c: Case, device: str, forward: bool) -> None:
    """Mark the running test xfail(strict=True) when the case carries a known bug there."""
    bug = c.bug
    if bug is not None and device in bug.devices and (bug.forward or not forward):
        request.applymarker(pytest.mark.xfail(strict=True, reason=bug.reason))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("row, c", CASES)
def test_forward_matches_numpy(request, row: OpRow, c: Case, dtype: Any, device: str) -> None:
    expect_known_bug(request, c, device, forward=True)
    check_forward(row, c, dtype, device)


@pytest.mark.parametrize("row, c", GRAD_CASES)
def test_gradcheck_float64(request, row: OpRow, c: Case) -> None:
    expect_known_bug(request, c, "cpu", forward=False)
    check_gradients(row, c)


@pytest.mark.parametrize("row, c", GRAD_CASES)
def test_gradients_match_cpu_float64(request, row: OpRow, c: Case, device: str) -> None:
    # the CPU's float64 run is the reference, so a bug on the CPU fails this on every device
    expect_known_bug(request, c, "cpu", forward=False)
    check_against_cpu_float64(row, c, device)


def test_gradients_flow_back_across_devices(device: str) -> None:
    """x on the CPU, the math on `device`, the loss back on the CPU: x.grad is on the CPU."""
    x_np = np.random.default_rng(3).standard_normal((3, 4))
    x = gnn.tensor(x_np, requires_grad=True)
    y = F.to_device(x, device)
    assert y.device.type == device
    loss = F.to_device((y.tanh() * 2).sum(), "cpu")
    loss.backward()
    assert x.grad.device == "cpu"
    np.testing.assert_allclose(x.grad.numpy(), 2 * (1 - np.tanh(x_np) ** 2), rtol=1e-12)


# ---- the table itself ----------------------------------------------------------------------------


def test_row_names_are_unique() -> None:
    ids = [row.id for row in ROWS]
    assert len(ids) == len(set(ids))
    for row in ROWS:
        case_ids = [c.id for c in row.cases]
        assert len(case_ids) == len(set(case_ids)), f"{row.id}: two cases with one id"


@pytest.mark.parametrize("row", [pytest.param(r, id=r.id) for r in ROWS])
def test_every_row_covers_empty_and_one_element_shapes(row: OpRow) -> None:
    assert any(c.is_empty for c in row.cases), f"{row.id}: no case with a zero-size dim"
    assert any(c.is_one_element for c in row.cases), f"{row.id}: no one-element case"


BROADCASTING = {"add", "sub", "mul", "div", "pow", "matmul", "where", "eq", "ne", "lt", "le"}
BROADCASTING |= {"gt", "ge", "masked_fill"}


@pytest.mark.parametrize("op", sorted(BROADCASTING))
def test_broadcasting_ops_have_broadcasting_cases(op: str) -> None:
    rows = [r for r in ROWS if r.op == op]
    assert rows, op
    for row in rows:
        broadcast = [c for c in row.cases if c.broadcasts]
        assert broadcast, f"{row.id}: no case where the operands' shapes differ"


class _ExpWithWrongGradient(Function):
    def forward(self, x: Any) -> Any:
        self.y = self.be.xp.exp(x)
        return self.y

    def backward(self, gy: Any) -> Any:
        return gy * self.y * 1.01


class _ExpWithCoarseBackward(Function):
    """Right in float64, but below float64 its backward rounds through float16 (a dtype bug)."""

    def forward(self, x: Any) -> Any:
        self.y = self.be.xp.exp(x)
        return self.y

    def backward(self, gy: Any) -> Any:
        gx = gy * self.y
        return gx if gx.dtype == np.float64 else gx.astype(np.float16).astype(gx.dtype)


def test_the_checks_can_fail() -> None:
    c = case((3, 4))
    wrong_ref = OpRow("exp", lambda x: np.exp(x) * (1 + 1e-4), [c])
    with pytest.raises(AssertionError):
        check_forward(wrong_ref, c, np.float32, "cpu")
    with pytest.raises(AssertionError):
        check_forward(wrong_ref, c, np.float64, "cpu")
    wrong_dtype = OpRow("exp", np.exp, [c], fn=lambda x: F.cast(F.exp(x), "float64"))
    with pytest.raises(AssertionError, match="dtype"):
        check_forward(wrong_dtype, c, np.float32, "cpu")
    wrong_grad = OpRow("exp", np.exp, [c], fn=_ExpWithWrongGradient.apply)
    with pytest.raises(AssertionError):
        check_gradients(wrong_grad, c)
    coarse_grad = OpRow("exp", np.exp, [c], fn=_ExpWithCoarseBackward.apply)
    check_gradients(coarse_grad, c)  # float64 is right ...
    with pytest.raises(AssertionError):  # ... float32 is not
        check_against_cpu_float64(coarse_grad, c, "cpu")


# ---- random compositions -------------------------------------------------------------------------
#
# A program is a list of steps drawn from the pool below, each applied to earlier values (leaves
# or results, so values are shared and their gradients add up). The loss is the sum of every
# value contracted with a fixed random tensor. gnn's gradients of it are compared with central
# differences of the same program written in NumPy.

FULL = (3, 4)
LEAF_SHAPES = [(3, 4), (3, 4), (4,), (3, 1), (4, 4)]
COLS = np.array([3, 0, 0, 2])  # repeats: gradients accumulate
ROW_INDEX = np.array([2, 2, 0])
CHOICE = mask(FULL)
MIX = np.array([0.7, -1.3])  # unequal, so that swapping the stacked operands shows


def _kind_matches(kind: str, shape: tuple) -> bool:
    if kind == "full":
        return shape == FULL
    if kind == "square":
        return shape == (4, 4)
    return shape != (4, 4)  # "any": broadcasts against (3, 4)


def _where(a: Tensor, b: Tensor) -> Tensor:
    return gnn.where(gnn.tensor(CHOICE, device=a.device), a, b)


@dataclass(frozen=True)
class Step:
    name: str
    kinds: tuple  # what each operand must be: "any", "full" (3, 4) or "square" (4, 4)
    gnn: Callable
    np: Callable


STEPS = [
    Step("tanh", ("any",), F.tanh, np.tanh),
    Step("sigmoid", ("any",), Tensor.sigmoid, np_sigmoid),
    Step("gelu", ("any",), F.gelu, np_gelu),
    Step("neg", ("any",), operator.neg, np.negative),
    Step("log1p_sq", ("any",), lambda a: F.log(1 + a * a), lambda a: np.log(1 + a * a)),
    Step("hypot1", ("any",), lambda a: (a**2 + 1).sqrt(), lambda a: np.sqrt(a**2 + 1)),
    Step("gauss", ("any",), lambda a: F.exp(-(a * a)), lambda a: np.exp(-(a * a))),
    Step("softmax", ("any",), lambda a: a.softmax(-1), lambda a: np_softmax(a, -1)),
    Step("log_softmax", ("full",), lambda a: a.log_softmax(0), lambda a: np_log_softmax(a, 0)),
    Step("add", ("any", "any"), operator.add, np.add),
    Step("sub", ("any", "any"), operator.sub, np.subtract),
    Step("mul", ("any", "any"), operator.mul, np.multiply),
    Step("div", ("any", "any"), lambda a, b: a / (1 + b * b), lambda a, b: a / (1 + b * b)),
    Step(
        "pow",
        ("any", "any"),
        lambda a, b: (a.sigmoid() + 0.5) ** b.tanh(),
        lambda a, b: (np_sigmoid(a) + 0.5) ** np.tanh(b),
    ),
    Step("where", ("any", "any"), _where, lambda a, b: np.where(CHOICE, a, b)),
    Step("mean", ("full",), lambda a: a.mean(1, keepdim=True), lambda a: a.mean(1, keepdims=True)),
    Step("sum", ("full",), lambda a: a.sum(0, keepdim=True), lambda a: a.sum(0, keepdims=True)),
    Step(
        "std",
        ("full",),
        lambda a: a.std(dim=1, keepdim=True),
        lambda a: a.std(axis=1, keepdims=True, ddof=1),
    ),
    Step(
        "shuffle",
        ("full",),
        lambda a: a.reshape(4, 3).transpose(0, 1),
        lambda a: a.reshape(4, 3).T,
    ),
    Step("flip", ("full",), lambda a: a[::-1], lambda a: a[::-1]),
    Step("gather_cols", ("full",), lambda a: a[:, COLS], lambda a: a[:, COLS]),
    Step("gather_rows", ("full",), lambda a: a[ROW_INDEX], lambda a: a[ROW_INDEX]),
    Step(
        "cat",
        ("full", "full"),
        lambda a, b: gnn.cat([a[:, :1], b[:, 1:]], dim=1),
        lambda a, b: np.concatenate([a[:, :1], b[:, 1:]], axis=1),
    ),
    Step(
        "stack",
        ("full", "full"),
        lambda a, b: (gnn.stack([a, b], dim=-1) * gnn.tensor(MIX, device=a.device)).sum(-1),
        lambda a, b: (np.stack([a, b], axis=-1) * MIX).sum(-1),
    ),
    Step("gram", ("full",), lambda a: a.T @ a * 0.25, lambda a: a.T @ a * 0.25),
    Step("matmul", ("full", "square"), lambda a, w: a @ w.tanh(), lambda a, w: a @ np.tanh(w)),
    Step(
        "linear",
        ("full", "square", "any"),
        lambda a, w, b: F.linear(a, w, b.sum(0) if b.ndim == 2 else b),
        lambda a, w, b: a @ w.T + (b.sum(0) if b.ndim == 2 else b),
    ),
]


def build_program(seed: int, n_steps: int = 12) -> tuple[list, list]:
    """Random (step, operand indices) pairs, operands drawn from earlier values (recent ones more
    often); and the shapes of all the values, leaves first."""
    rng = np.random.default_rng(seed)
    shapes = list(LEAF_SHAPES)
    program = []
    for _ in range(n_steps):
        step = STEPS[rng.integers(len(STEPS))]
        operands = []
        for kind in step.kinds:
            candidates = [i for i, s in enumerate(shapes) if _kind_matches(kind, s)]
            weights = np.arange(1, len(candidates) + 1, dtype=np.float64)
            operands.append(int(rng.choice(candidates, p=weights / weights.sum())))
        probe = [np.ones(shapes[i]) for i in operands]
        shapes.append(np.shape(step.np(*probe)))
        program.append((step, tuple(operands)))
    return program, shapes


SEEDS = range(12)


def run_numpy(program: list, leaves: list[np.ndarray], contract: list[np.ndarray]) -> float:
    vals = list(leaves)
    for step, operands in program:
        vals.append(step.np(*[vals[i] for i in operands]))
    return float(sum((v * g).sum() for v, g in zip(vals, contract)))


def run_gnn(program: list, leaves: list[Tensor], contract: list[Tensor]) -> Tensor:
    vals = list(leaves)
    for step, operands in program:
        vals.append(step.gnn(*[vals[i] for i in operands]))
    total = (vals[0] * contract[0]).sum()
    for v, g in zip(vals[1:], contract[1:]):
        total = total + (v * g).sum()
    return total


@pytest.mark.parametrize("seed", SEEDS)
def test_random_composition_gradients_match_numpy_central_differences(
    seed: int, device: str
) -> None:
    program, shapes = build_program(seed)
    rng = np.random.default_rng(100 + seed)
    leaves = [rng.standard_normal(s) for s in LEAF_SHAPES]
    contract = [rng.standard_normal(s) for s in shapes]

    x = [gnn.tensor(a, device=device, requires_grad=True) for a in leaves]
    g = [gnn.tensor(a, device=device) for a in contract]
    loss = run_gnn(program, x, g)
    names = " -> ".join(f"{s.name}{ops}" for s, ops in program)
    expected = run_numpy(program, leaves, contract)
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-6, err_msg=names)  # gnn's erf: 1e-7
    loss.backward()

    eps = 1e-6
    for k, leaf in enumerate(leaves):
        numeric = np.zeros_like(leaf)
        for i in range(leaf.size):
            plus, minus = [a.copy() for a in leaves], [a.copy() for a in leaves]
            plus[k].reshape(-1)[i] += eps
            minus[k].reshape(-1)[i] -= eps
            numeric.reshape(-1)[i] = (
                run_numpy(program, plus, contract) - run_numpy(program, minus, contract)
            ) / (2 * eps)
        analytic = np.zeros_like(leaf) if x[k].grad is None else x[k].grad.numpy()
        np.testing.assert_allclose(
            analytic, numeric, rtol=1e-5, atol=1e-6, err_msg=f"leaf {k} of {names}"
        )


def test_random_programs_use_every_step() -> None:
    used = {step.name for seed in SEEDS for step, _ in build_program(seed)[0]}
    assert used == {s.name for s in STEPS}, f"never drawn: {sorted({s.name for s in STEPS} - used)}"
