"""F.layer_norm and nn.LayerNorm against NumPy written out by hand, plus gradient checks."""

import numpy as np
import pytest
from conftest import FAKE_CUDA

import gnn
import gnn.functional as F
from gnn import nn
from gnn.testing import gradcheck


def ref_layer_norm(x, n_dims, w=None, b=None, eps=1e-5):
    axes = tuple(range(x.ndim - n_dims, x.ndim))
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mu) / np.sqrt(var + eps)
    if w is not None:
        y = y * w
    if b is not None:
        y = y + b
    return y


rng = np.random.default_rng(0)


@pytest.mark.parametrize("shape,norm", [((4, 6), (6,)), ((2, 3, 5), (5,)), ((2, 3, 5), (3, 5))])
def test_forward_matches_numpy(shape, norm):
    x = rng.standard_normal(shape) * 3 + 1
    w, b = rng.standard_normal(norm), rng.standard_normal(norm)
    out = F.layer_norm(gnn.tensor(x), norm, gnn.tensor(w), gnn.tensor(b), eps=1e-4)
    np.testing.assert_allclose(out.numpy(), ref_layer_norm(x, len(norm), w, b, 1e-4), rtol=1e-12)
    plain = F.layer_norm(gnn.tensor(x), norm)
    np.testing.assert_allclose(plain.numpy(), ref_layer_norm(x, len(norm)), rtol=1e-12, atol=1e-12)


def test_float32_keeps_dtype_and_is_accurate():
    x = (rng.standard_normal((8, 32)) * 100 + 1000).astype(np.float32)
    out = F.layer_norm(gnn.tensor(x), 32)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), ref_layer_norm(x.astype(np.float64), 1), atol=2e-3)


def test_gradcheck_affine_and_multi_dim():
    x = gnn.tensor(rng.standard_normal((3, 2, 4)), requires_grad=True)
    w = gnn.tensor(rng.standard_normal(4), requires_grad=True)
    b = gnn.tensor(rng.standard_normal(4), requires_grad=True)
    assert gradcheck(lambda x, w, b: F.layer_norm(x, 4, w, b), [x, w, b])
    w2 = gnn.tensor(rng.standard_normal((2, 4)), requires_grad=True)
    assert gradcheck(lambda x, w: F.layer_norm(x, (2, 4), w), [x, w2])
    assert gradcheck(lambda x: F.layer_norm(x, (2, 4), eps=1e-2), [x])


def test_gradcheck_weight_only_grad():
    x = gnn.tensor(rng.standard_normal((5, 3)))  # input does not require grad
    b = gnn.tensor(rng.standard_normal(3), requires_grad=True)
    assert gradcheck(lambda x, b: F.layer_norm(x, 3, None, b), [x, b])


def test_errors_name_shapes():
    x = gnn.randn(2, 5)
    with pytest.raises(ValueError, match=r"layer_norm: normalized_shape \(4,\).*\(2, 5\)"):
        F.layer_norm(x, 4)
    with pytest.raises(ValueError, match="weight of shape"):
        F.layer_norm(x, 5, gnn.ones(4))
    with pytest.raises(ValueError, match=r"LayerNorm\(\(5,\)\).*\(2, 4\)"):
        nn.LayerNorm(5)(gnn.randn(2, 4))
    with pytest.raises(ValueError, match="normalized_shape"):
        nn.LayerNorm(0)


def test_module_parameters_and_defaults():
    m = nn.LayerNorm(6)
    assert list(m.state_dict()) == ["weight", "bias"]
    np.testing.assert_array_equal(m.weight.numpy(), np.ones(6))
    np.testing.assert_array_equal(m.bias.numpy(), np.zeros(6))
    assert m.eps == 1e-5
    assert list(nn.LayerNorm(6, bias=False).state_dict()) == ["weight"]
    assert list(nn.LayerNorm(6, elementwise_affine=False).state_dict()) == []
    x = rng.standard_normal((3, 6)).astype(np.float32)
    np.testing.assert_allclose(m(gnn.tensor(x)).numpy(), ref_layer_norm(x, 1), atol=1e-5)


def test_empty_batch():
    out = F.layer_norm(gnn.zeros(0, 4), 4)
    assert out.shape == (0, 4)


@pytest.mark.gpu
@pytest.mark.skipif(not FAKE_CUDA, reason="counts launches on the fake CuPy (GNN_FAKE_CUDA=1)")
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("norm, affine", [((6,), "wb"), ((2, 3), "w"), ((6,), ""), ((6,), "b")])
def test_cuda_is_one_launch_forward_and_at_most_two_backward(dtype, norm, affine):
    """kernels/layer_norm.cu: the op on the GPU matches the CPU, in 1 + 2 kernel launches."""
    import cupy

    x = rng.standard_normal((4, 5, *norm)).astype(dtype)
    params = {k: rng.standard_normal(norm).astype(dtype) for k in affine}
    grads, launches = {}, {}
    for device in ("cpu", "cuda"):
        xt = gnn.tensor(x, device=device, requires_grad=True)
        ps = {k: gnn.tensor(v, device=device, requires_grad=True) for k, v in params.items()}
        gy = gnn.tensor(x[::-1].copy(), device=device)
        with cupy.counting() as fwd:
            y = F.layer_norm(xt, norm, ps.get("w"), ps.get("b"))
        with cupy.counting() as bwd:
            y.backward(gy)
        # launches made by the op (backward() also seeds the gradient: one copy of its own)
        launches[device] = tuple(
            sum(n for src, n in c.by_source().items() if "layer_norm.py" in src) for c in (fwd, bwd)
        )
        grads[device] = [y.numpy(), xt.grad.numpy()] + [p.grad.numpy() for p in ps.values()]
    fwd_n, bwd_n = launches["cuda"]
    assert fwd_n == 1 and bwd_n <= 2 and bwd_n == 1 + bool(affine), launches["cuda"]
    tol = 1e-5 if dtype == np.float32 else 1e-2
    for cpu, gpu in zip(grads["cpu"], grads["cuda"]):
        np.testing.assert_allclose(gpu, cpu, rtol=tol, atol=tol * max(1.0, np.abs(cpu).max()))
