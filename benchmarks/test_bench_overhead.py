"""Python-side cost of a gnn op: the op on a small tensor next to the bare array call it wraps.

On a small tensor the work is negligible, so the time is launch and dispatch overhead: what gnn's
Tensor, Function.apply and (with requires_grad) graph recording add on top of NumPy or CuPy.

- GPU (gpu-marked, skips without CuPy and a device): target gnn <= 1.5x the bare CuPy call
  (issue 3), in no-grad mode; the requires_grad variant is reported without a target.
- CPU: the same ops next to the bare NumPy call, reported without a target (NumPy's own calls
  take about a microsecond, so any wrapper shows up as a large ratio; the numbers say how large).

Each group's baseline is the bare call (extra_info["role"] = "baseline"); benchmarks/conftest.py
adds every other entry's ratio to it.
"""

from __future__ import annotations

import pytest

import gnn
import gnn.functional as F
from gnn.backend import cuda_available

SIZE = 1024  # elements: far too few for the arithmetic to matter

# name -> (gnn op on Tensors, the bare call on arrays of the backend's xp)
OPS = {
    "add": (lambda a, b: a + b, lambda xp, a, b: xp.add(a, b)),
    "mul": (lambda a, b: a * b, lambda xp, a, b: xp.multiply(a, b)),
    "relu": (lambda a, b: F.relu(a), lambda xp, a, b: xp.maximum(a, 0)),
    "sum": (lambda a, b: a.sum(), lambda xp, a, b: a.sum()),
    "matmul": (lambda a, b: a @ b, lambda xp, a, b: a @ b),
}
SHAPES = {"matmul": (32, 32)}  # the others take (SIZE,)

DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param(
        "cuda",
        id="cuda",
        marks=[
            pytest.mark.gpu,
            pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA device"),
        ],
    ),
]


def _operands(device: str, op: str, requires_grad: bool = False) -> tuple[gnn.Tensor, gnn.Tensor]:
    gnn.manual_seed(0)
    shape = SHAPES.get(op, (SIZE,))
    a = gnn.randn(*shape, device=device, requires_grad=requires_grad)
    b = gnn.randn(*shape, device=device, requires_grad=requires_grad)
    return a, b


def _group(benchmark, device: str, op: str) -> None:
    benchmark.group = f"op-overhead-{device}-{op}"


@pytest.mark.parametrize("op", sorted(OPS))
@pytest.mark.parametrize("device", DEVICES)
def test_bare_array_call(benchmark, device: str, op: str) -> None:
    a, b = _operands(device, op)
    xp = a._be.xp
    x, y = a.array, b.array
    bare = OPS[op][1]
    _group(benchmark, device, op)
    benchmark.extra_info["role"] = "baseline"
    out = benchmark(bare, xp, x, y)
    a._be.synchronize()
    assert out.size in (1, SIZE)  # matmul: 32 * 32 == SIZE


@pytest.mark.parametrize("op", sorted(OPS))
@pytest.mark.parametrize("device", DEVICES)
def test_gnn_op_no_grad(benchmark, device: str, op: str) -> None:
    a, b = _operands(device, op)
    fn = OPS[op][0]
    _group(benchmark, device, op)
    if device == "cuda":
        benchmark.extra_info["target"] = 1.5
    with gnn.no_grad():  # entered once, outside the timed calls
        out = benchmark(fn, a, b)
    a._be.synchronize()
    assert out.numel() in (1, SIZE)


@pytest.mark.parametrize("op", sorted(OPS))
@pytest.mark.parametrize("device", DEVICES)
def test_gnn_op_recording_graph(benchmark, device: str, op: str) -> None:
    a, b = _operands(device, op, requires_grad=True)
    fn = OPS[op][0]
    _group(benchmark, device, op)
    out = benchmark(fn, a, b)
    a._be.synchronize()
    assert out.requires_grad
