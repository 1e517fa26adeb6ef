"""gnn.bfloat16 (ml_dtypes) where dtypes go: creation, .to, Module.bfloat16, files, gradients."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import gnn
from gnn import nn
from gnn.testing import gradcheck

ml_dtypes = pytest.importorskip("ml_dtypes")
BF16 = np.dtype(ml_dtypes.bfloat16)


def test_import_gnn_does_not_import_ml_dtypes() -> None:
    code = "import sys, gnn; assert 'ml_dtypes' not in sys.modules; print(gnn.bfloat16)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "bfloat16"


@pytest.mark.parametrize("spelling", ["bfloat16", "bf16", BF16, ml_dtypes.bfloat16])
def test_creation_and_names(spelling) -> None:
    assert gnn.bfloat16 == BF16
    for t in (
        gnn.zeros(2, 3, dtype=spelling),
        gnn.ones(4, dtype=spelling),
        gnn.randn(3, dtype=spelling),
        gnn.rand(3, dtype=spelling),
        gnn.full((2,), 1.5, dtype=spelling),
        gnn.tensor([1.0, 2.5], dtype=spelling),
    ):
        assert t.dtype == BF16
        assert t.is_floating_point()
    assert gnn.tensor(np.array([1.0, 3.0], BF16)).dtype == BF16  # the array's dtype is kept


def test_conversions_round_to_nearest_even() -> None:
    x = gnn.tensor([1.0, 1.00390625, 1.01171875, -3.3e38, 1e-40])  # ties and extremes
    b = x.bfloat16()
    assert b.dtype == BF16
    expected = np.array([1.0, 1.0, 1.015625, -3.3e38, 1e-40], np.float32).astype(BF16)
    np.testing.assert_array_equal(b.numpy(), expected)
    assert b.float().dtype == np.float32 and b.double().dtype == np.float64
    assert b[:3].half().dtype == np.float16
    assert x.to(gnn.bfloat16).dtype == BF16 and x.to("bfloat16").dtype == BF16
    assert x.type(gnn.bfloat16).dtype == BF16


def test_cast_is_differentiable() -> None:
    x = gnn.randn(3, 4, dtype=gnn.float64, requires_grad=True)
    y = (x.bfloat16() * 2.0).float().sum()
    y.backward()
    assert x.grad.dtype == np.float64
    np.testing.assert_array_equal(x.grad.numpy(), np.full((3, 4), 2.0))
    assert gnn.zeros(2, dtype=gnn.bfloat16).requires_grad_().requires_grad


def test_module_bfloat16_and_state_dict_round_trip(tmp_path) -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    wide = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    model.bfloat16()
    assert all(p.dtype == BF16 for p in model.parameters())
    path = tmp_path / "m.safetensors"
    gnn.io.save(model.state_dict(), path)
    back = gnn.io.load(path)
    for k, v in back.items():
        assert v.dtype == BF16
        np.testing.assert_array_equal(v.numpy(), wide[k].astype(BF16))
    fresh = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    fresh.load_state_dict(back)  # into float32 parameters: exact widening
    for k, v in fresh.state_dict().items():
        assert v.dtype == np.float32
        np.testing.assert_array_equal(v.numpy(), wide[k].astype(BF16).astype(np.float32))
    model.float()
    assert all(p.dtype == np.float32 for p in model.parameters())


def test_gnn_save_load_nested(tmp_path) -> None:
    t = gnn.randn(2, 3).bfloat16()
    gnn.save({"a": [t, 3]}, tmp_path / "c.pt")
    got = gnn.load(tmp_path / "c.pt")
    assert got["a"][0].dtype == BF16
    np.testing.assert_array_equal(got["a"][0].numpy(), t.numpy())


def test_safetensors_round_trip_with_pytorch(tmp_path) -> None:
    torch = pytest.importorskip("torch")
    st_torch = pytest.importorskip("safetensors.torch")
    ours = gnn.randn(5, 7).bfloat16()
    gnn.io.save({"w": ours}, tmp_path / "g.safetensors")
    theirs = st_torch.load_file(str(tmp_path / "g.safetensors"))["w"]
    assert theirs.dtype == torch.bfloat16
    np.testing.assert_array_equal(theirs.float().numpy(), ours.float().numpy())
    t = torch.randn(4, 6).bfloat16()
    st_torch.save_file({"t": t}, str(tmp_path / "t.safetensors"))
    got = gnn.io.load(tmp_path / "t.safetensors")["t"]
    assert got.dtype == BF16
    np.testing.assert_array_equal(got.float().numpy(), t.float().numpy())


@pytest.mark.parametrize("op", ["matmul", "linear", "conv2d"])
def test_low_precision_ops_compute_in_float32_on_cpu(op) -> None:
    gnn.manual_seed(0)
    a, b = gnn.randn(4, 3, 6, 6), gnn.randn(5, 3, 3, 3)
    if op == "matmul":
        a, b = gnn.randn(2, 8, 16), gnn.randn(16, 8)
        f = gnn.matmul
    elif op == "linear":
        a, b = gnn.randn(8, 16), gnn.randn(4, 16)
        f = gnn.nn.functional.linear
    else:
        f = gnn.nn.functional.conv2d
    a16, b16 = a.bfloat16(), b.bfloat16()
    out = f(a16, b16)
    assert out.dtype == BF16
    # float32 arithmetic on the bfloat16 values, rounded once at the end
    want = f(a16.float(), b16.float()).numpy().astype(BF16)
    np.testing.assert_array_equal(out.numpy(), want)


@pytest.mark.parametrize("op", ["matmul", "linear", "conv2d"])
def test_gradients_of_widened_ops(op) -> None:
    """The low-precision paths of the ops are differentiable: gradcheck through a float16 cast
    would be too coarse, so check the bf16 backward against float32 on the same values."""
    gnn.manual_seed(1)
    if op == "matmul":
        shapes, f = ((3, 5), (5, 2)), gnn.matmul
    elif op == "linear":
        shapes, f = ((3, 5), (2, 5)), gnn.nn.functional.linear
    else:
        shapes, f = ((2, 2, 5, 5), (3, 2, 3, 3)), gnn.nn.functional.conv2d
    xs = [gnn.randn(*s).bfloat16().float() for s in shapes]  # values exact in bfloat16
    lo = [x.bfloat16().requires_grad_() for x in xs]
    hi = [x.clone().requires_grad_() for x in xs]
    g = gnn.randn(*f(*xs).shape).bfloat16().float()
    (f(*lo).float() * g).sum().backward()
    (f(*hi) * g).sum().backward()
    for a, b in zip(lo, hi):
        assert a.grad.dtype == BF16
        np.testing.assert_allclose(a.grad.float().numpy(), b.grad.numpy(), rtol=1e-2, atol=1e-2)
    # and the float32 path they are compared with is right (numerical gradient)
    assert gradcheck(lambda *t: f(*t), [x.double().requires_grad_() for x in xs])


def test_elementwise_and_reductions_work_on_bfloat16() -> None:
    x = gnn.tensor([-1.0, 0.5, 2.0], dtype=gnn.bfloat16)
    assert gnn.relu(x).dtype == BF16
    assert (x * x).dtype == BF16
    assert float(x.mean()) == pytest.approx(0.5)
    assert float(x.float().sum()) == pytest.approx(1.5)


@pytest.mark.gpu
def test_bfloat16_on_cuda_is_a_clear_error() -> None:
    if not gnn.cuda_available():
        pytest.skip("needs CuPy and a CUDA device")
    with pytest.raises(TypeError, match="only on the CPU"):
        gnn.randn(3, device="cuda").bfloat16()
    assert gnn.randn(3, device="cuda").half().dtype == np.float16
