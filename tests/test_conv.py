"""conv2d, conv_transpose2d, max_pool2d, avg_pool2d and their layers, against NumPy loops written
out by hand (one output pixel at a time), plus float64 gradient checks over strides, padding,
dilation and groups."""

import copy
import math

import numpy as np
import pytest

import gnn
import gnn.functional as F
from gnn import autograd, nn
from gnn.testing import gradcheck

rng = np.random.default_rng(0)


# ---- references: direct loops over output pixels ------------------------------------------------


def ref_conv2d(x, w, b=None, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1), groups=1):
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.zeros((n, c, h + pads[0] + pads[1], wd + pads[2] + pads[3]))
    xp[:, :, pads[0] : pads[0] + h, pads[2] : pads[2] + wd] = x
    oh = (xp.shape[2] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (xp.shape[3] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((n, o, oh, ow))
    og = o // groups
    for oc in range(o):
        grp = oc // og
        for i in range(oh):
            for j in range(ow):
                r, s = i * stride[0], j * stride[1]
                patch = xp[:, grp * cg : (grp + 1) * cg,
                           r : r + dilation[0] * (kh - 1) + 1 : dilation[0],
                           s : s + dilation[1] * (kw - 1) + 1 : dilation[1]]  # fmt: skip
                out[:, oc, i, j] = (patch * w[oc]).sum(axis=(1, 2, 3))
    if b is not None:
        out += b[None, :, None, None]
    return out


def ref_conv_transpose2d(x, w, b=None, stride=(1, 1), pad=(0, 0), out_pad=(0, 0), groups=1,
                         dilation=(1, 1)):  # fmt: skip
    """Scatter every input pixel times the kernel onto the output grid, then crop the padding."""
    n, cin, h, wd = x.shape
    _, cog, kh, kw = w.shape
    cing = cin // groups
    full_h = (h - 1) * stride[0] + dilation[0] * (kh - 1) + 1 + out_pad[0]
    full_w = (wd - 1) * stride[1] + dilation[1] * (kw - 1) + 1 + out_pad[1]
    full = np.zeros((n, cog * groups, full_h, full_w))
    for c in range(cin):
        grp = c // cing
        for i in range(h):
            for j in range(wd):
                for ki in range(kh):
                    for kj in range(kw):
                        r = i * stride[0] + ki * dilation[0]
                        s = j * stride[1] + kj * dilation[1]
                        full[:, grp * cog : (grp + 1) * cog, r, s] += (
                            x[:, c, i, j][:, None] * w[c, :, ki, kj][None, :]
                        )
    out = full[:, :, pad[0] : full_h - pad[0], pad[1] : full_w - pad[1]]
    if b is not None:
        out = out + b[None, :, None, None]
    return out


def ref_pool(x, k, s, p, d=(1, 1), mode="max", ceil_mode=False, count_include_pad=True):
    n, c, h, w = x.shape
    outs = []
    for size, kk, ss, pp, dd in zip((h, w), k, s, p, d):
        eff = dd * (kk - 1) + 1
        o = (size + 2 * pp - eff + ((ss - 1) if ceil_mode else 0)) // ss + 1
        if ceil_mode and (o - 1) * ss >= size + pp:
            o -= 1
        outs.append(o)
    out = np.zeros((n, c, outs[0], outs[1]))
    for i in range(outs[0]):
        for j in range(outs[1]):
            rows = [i * s[0] - p[0] + a * d[0] for a in range(k[0])]
            cols = [j * s[1] - p[1] + a * d[1] for a in range(k[1])]
            vals = [x[:, :, r, q] for r in rows for q in cols if 0 <= r < h and 0 <= q < w]
            if mode == "max":
                out[:, :, i, j] = np.max(vals, axis=0)
            else:
                hs, ws = i * s[0] - p[0], j * s[1] - p[1]
                he, we = min(hs + k[0], h + p[0]), min(ws + k[1], w + p[1])
                if count_include_pad:
                    div = (he - hs) * (we - ws)
                else:
                    div = (min(he, h) - max(hs, 0)) * (min(we, w) - max(ws, 0))
                out[:, :, i, j] = np.sum(vals, axis=0) / div
    return out


def t(a, grad=False):
    return gnn.tensor(a, requires_grad=grad)


# ---- conv2d -------------------------------------------------------------------------------------

CONV_CASES = [
    # (in_ch, out_ch, kernel, stride, padding, dilation, groups, hw)
    (3, 4, (3, 3), 1, 1, 1, 1, (6, 7)),
    (3, 2, (2, 3), 2, 0, 1, 1, (7, 8)),
    (4, 6, (3, 2), (2, 1), (1, 2), (2, 1), 2, (7, 6)),
    (2, 3, (3, 3), 1, "same", 2, 1, (5, 6)),
    (2, 2, (2, 4), 1, "same", 1, 1, (5, 6)),
    (4, 4, (3, 3), 3, 2, 1, 4, (8, 7)),
    (1, 3, (1, 1), 1, "valid", 1, 1, (3, 4)),
    (16, 4, (3, 3), 1, 1, 1, 1, (4, 4)),  # many input channels: the flat im2col layout
]


def _pads(padding, kernel, dilation):
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        d = dilation if isinstance(dilation, tuple) else (dilation, dilation)
        tot = [dd * (k - 1) for dd, k in zip(d, kernel)]
        return (tot[0] // 2, tot[0] - tot[0] // 2, tot[1] // 2, tot[1] - tot[1] // 2)
    p = padding if isinstance(padding, tuple) else (padding, padding)
    return (p[0], p[0], p[1], p[1])


def _tup(v):
    return v if isinstance(v, tuple) else (v, v)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_forward_matches_loops(case):
    cin, cout, k, s, p, d, g, hw = case
    x = rng.standard_normal((2, cin) + hw)
    w = rng.standard_normal((cout, cin // g) + k)
    b = rng.standard_normal(cout)
    out = F.conv2d(t(x), t(w), t(b), stride=s, padding=p, dilation=d, groups=g)
    ref = ref_conv2d(x, w, b, _tup(s), _pads(p, k, _tup(d)), _tup(d), g)
    assert out.shape == ref.shape
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_gradcheck(case):
    cin, cout, k, s, p, d, g, hw = case
    if cin > 8:  # the same layout is checked by the smaller cases; keep the suite fast
        hw = (3, 3)
    x = t(rng.standard_normal((2, cin) + hw), True)
    w = t(rng.standard_normal((cout, cin // g) + k), True)
    b = t(rng.standard_normal(cout), True)
    assert gradcheck(
        lambda x, w, b: F.conv2d(x, w, b, stride=s, padding=p, dilation=d, groups=g), [x, w, b]
    )


def test_conv2d_gradcheck_weight_only_and_no_bias():
    x = t(rng.standard_normal((2, 2, 5, 5)))
    w = t(rng.standard_normal((3, 2, 3, 3)), True)
    assert gradcheck(lambda x, w: F.conv2d(x, w, padding=1), [x, w])


def test_conv2d_float32_and_unbatched():
    x = rng.standard_normal((3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    out = F.conv2d(t(x), t(w), padding=1)
    assert out.dtype == np.float32 and out.shape == (5, 6, 6)
    ref = ref_conv2d(x[None].astype(np.float64), w.astype(np.float64), pads=(1, 1, 1, 1))[0]
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-4, atol=1e-4)


# ---- conv_transpose2d ---------------------------------------------------------------------------

CONVT_CASES = [
    # (in_ch, out_ch, kernel, stride, padding, output_padding, groups, dilation, hw)
    (3, 2, (3, 3), 1, 0, 0, 1, 1, (4, 5)),
    (2, 3, (3, 3), 2, 1, 1, 1, 1, (3, 4)),
    (4, 6, (2, 4), (3, 2), (0, 1), (2, 0), 2, (1, 2), (3, 3)),
    (2, 2, (3, 2), 1, 1, 1, 1, 2, (4, 3)),
    (2, 4, (4, 4), 2, 1, 0, 2, 1, (3, 3)),
]


@pytest.mark.parametrize("case", CONVT_CASES)
def test_conv_transpose2d_forward_matches_scatter(case):
    cin, cout, k, s, p, op, g, d, hw = case
    x = rng.standard_normal((2, cin) + hw)
    w = rng.standard_normal((cin, cout // g) + k)
    b = rng.standard_normal(cout)
    out = F.conv_transpose2d(t(x), t(w), t(b), s, p, op, g, d)
    ref = ref_conv_transpose2d(x, w, b, _tup(s), _tup(p), _tup(op), g, _tup(d))
    assert out.shape == ref.shape
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", CONVT_CASES)
def test_conv_transpose2d_gradcheck(case):
    cin, cout, k, s, p, op, g, d, hw = case
    x = t(rng.standard_normal((2, cin) + hw), True)
    w = t(rng.standard_normal((cin, cout // g) + k), True)
    b = t(rng.standard_normal(cout), True)
    assert gradcheck(lambda x, w, b: F.conv_transpose2d(x, w, b, s, p, op, g, d), [x, w, b])


def test_conv_transpose_is_the_adjoint_of_conv():
    """<conv(x), y> == <x, conv_transpose(y)> with the same weight: the defining identity."""
    x = rng.standard_normal((2, 3, 7, 6))
    w = rng.standard_normal((4, 3, 3, 3))
    y = F.conv2d(t(x), t(w), stride=2, padding=1).numpy()
    z = rng.standard_normal(y.shape)
    back = F.conv_transpose2d(t(z), t(w), stride=2, padding=1, output_padding=(0, 1)).numpy()
    assert back.shape == x.shape
    np.testing.assert_allclose((y * z).sum(), (x * back).sum(), rtol=1e-10)


# ---- pooling ------------------------------------------------------------------------------------

POOL_CASES = [
    # (kernel, stride, padding, dilation, ceil_mode, hw)
    ((2, 2), None, 0, 1, False, (6, 8)),
    ((3, 3), 2, 1, 1, False, (7, 6)),
    ((3, 2), 1, (1, 0), (1, 2), False, (5, 7)),
    ((3, 3), 2, 0, 1, True, (8, 7)),
    ((2, 2), 2, 1, 1, True, (5, 5)),
    ((2, 3), (1, 2), 0, 1, False, (5, 7)),
    ((2, 3), (1, 3), 0, (1, 2), True, (5, 4)),  # ceil_mode: a window wider than the input
    ((2, 5), (1, 3), 0, 1, True, (5, 4)),
]


@pytest.mark.parametrize("case", POOL_CASES)
def test_max_pool2d_matches_loops_and_gradcheck(case):
    k, s, p, d, ceil, hw = case
    x = rng.standard_normal((2, 3) + hw)
    out = F.max_pool2d(t(x), k, s, p, d, ceil)
    ss = k if s is None else _tup(s)
    ref = ref_pool(x, k, ss, _tup(p), _tup(d), "max", ceil)
    np.testing.assert_allclose(out.numpy(), ref, rtol=0, atol=0)
    assert gradcheck(lambda x: F.max_pool2d(x, k, s, p, d, ceil), [t(x, True)])


@pytest.mark.parametrize("case", POOL_CASES)
@pytest.mark.parametrize("include_pad", [True, False])
def test_avg_pool2d_matches_loops_and_gradcheck(case, include_pad):
    k, s, p, _, ceil, hw = case
    x = rng.standard_normal((2, 3) + hw)
    out = F.avg_pool2d(t(x), k, s, p, ceil, include_pad)
    ss = k if s is None else _tup(s)
    ref = ref_pool(x, k, ss, _tup(p), (1, 1), "avg", ceil, include_pad)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-12, atol=1e-12)
    assert gradcheck(lambda x: F.avg_pool2d(x, k, s, p, ceil, include_pad), [t(x, True)])


def test_avg_pool2d_divisor_override():
    x = rng.standard_normal((1, 2, 4, 4))
    out = F.avg_pool2d(t(x), 2, divisor_override=3)
    ref = ref_pool(x, (2, 2), (2, 2), (0, 0), mode="avg") * 4 / 3
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-12)


def test_max_pool_ties_send_the_gradient_to_the_first_maximum():
    x = t(np.zeros((1, 1, 4, 4)), True)
    F.max_pool2d(x, 2).sum().backward()
    expected = np.zeros((4, 4))
    expected[::2, ::2] = 1.0  # the top-left element of each window
    np.testing.assert_array_equal(x.grad.numpy()[0, 0], expected)
    y = t(np.array([[[[1.0, 3.0, 3.0, 0.0]]]]), True)
    F.max_pool2d(y, (1, 3), stride=1).sum().backward()  # windows (1,3,3) and (3,3,0)
    np.testing.assert_array_equal(y.grad.numpy()[0, 0, 0], [0.0, 2.0, 0.0, 0.0])


def test_max_pool_nan_is_the_maximum_and_takes_the_gradient():
    """As in PyTorch: a window holding a NaN has the NaN as its max, and the NaN the gradient."""
    x = t(np.array([[[[1.0, np.nan, 2.0, 0.5, np.nan, -np.inf]]]]), True)
    y = F.max_pool2d(x, (1, 2))  # windows (1, nan), (2, 0.5), (nan, -inf)
    np.testing.assert_array_equal(y.numpy()[0, 0, 0], [np.nan, 2.0, np.nan])
    y.backward(gnn.tensor(np.array([[[[1.0, 2.0, 3.0]]]])))
    np.testing.assert_array_equal(x.grad.numpy()[0, 0, 0], [0.0, 1.0, 2.0, 0.0, 3.0, 0.0])


@pytest.mark.parametrize(
    "kernel, stride, expected",
    [
        ((1, 2), 2, [0.0, np.nan, np.inf, 0.0, np.inf, 0.0]),  # windows (1,3) (2,0) (nan,1)
        ((1, 3), 1, [0.0, np.nan, 0.0, 0.0, np.inf, 0.0]),  # two windows' max at 3, two at nan
    ],
)
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_max_pool_non_finite_gradient_reaches_the_maximum_alone(kernel, stride, expected, device):
    """A NaN or inf gradient goes to its window's maximum only, the other pixels stay 0 (as
    PyTorch; the CPU and the CUDA kernel agree; a 0/1 mask times it would give them NaN)."""
    if device == "cuda" and not gnn.cuda.is_available():
        pytest.skip("needs CuPy (GNN_FAKE_CUDA=1 for the fake)")
    x0 = np.array([[[[1.0, 3.0, 2.0, 0.0, np.nan, 1.0]]]], np.float32)
    x = gnn.tensor(x0, requires_grad=True, device=device)
    y = F.max_pool2d(x, kernel, stride)
    gy = np.full(y.shape, np.inf, np.float32)
    gy[..., 0] = np.nan
    y.backward(gnn.tensor(gy, device=device))
    np.testing.assert_array_equal(x.grad.numpy()[0, 0, 0], expected)


# ---- layers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, shape, out_shape",
    [
        (lambda: nn.Conv2d(2, 4, 3, padding=1, groups=2), (0, 2, 5, 5), (0, 4, 5, 5)),
        (lambda: nn.Conv2d(8, 2, 3, padding=1), (0, 8, 5, 5), (0, 2, 5, 5)),  # flat layout
        (lambda: nn.Conv2d(2, 3, 3, stride=2), (0, 2, 5, 5), (0, 3, 2, 2)),
        (lambda: nn.ConvTranspose2d(2, 3, 3, stride=2), (0, 2, 5, 5), (0, 3, 11, 11)),
        (lambda: nn.ConvTranspose2d(2, 3, 3), (0, 2, 5, 5), (0, 3, 7, 7)),
    ],
)
def test_empty_batch(make, shape, out_shape):
    """Zero images in, zero images out, zero weight gradients (PyTorch's shapes)."""
    layer = make()
    x = gnn.tensor(np.zeros(shape, np.float32), requires_grad=True)
    y = layer(x)
    assert y.shape == out_shape
    y.sum().backward()
    assert x.grad.shape == shape
    np.testing.assert_array_equal(layer.weight.grad.numpy(), np.zeros(layer.weight.shape))


def test_conv_layers_shapes_names_and_init():
    gnn.manual_seed(0)
    conv = nn.Conv2d(4, 6, (3, 5), stride=2, groups=2)
    assert list(conv.state_dict()) == ["weight", "bias"]
    assert conv.weight.shape == (6, 2, 3, 5) and conv.bias.shape == (6,)
    bound = 1 / math.sqrt(2 * 3 * 5)  # kaiming_uniform(a=sqrt(5)) gives U(+-1/sqrt(fan_in))
    assert np.abs(conv.weight.numpy()).max() <= bound
    assert np.abs(conv.weight.numpy()).max() > 0.8 * bound
    assert np.abs(conv.bias.numpy()).max() <= bound
    assert nn.Conv2d(1, 2, 3, bias=False).bias is None
    tconv = nn.ConvTranspose2d(4, 6, 3, groups=2)
    assert tconv.weight.shape == (4, 3, 3, 3)
    assert np.abs(tconv.weight.numpy()).max() <= 1 / math.sqrt(3 * 9)
    out = tconv(gnn.randn(2, 4, 5, 5))
    assert out.shape == (2, 6, 7, 7)


def test_conv_layer_matches_functional():
    conv = nn.Conv2d(3, 4, 3, stride=1, padding="same", dilation=2, dtype="float64")
    x = rng.standard_normal((2, 3, 6, 6))
    ref = ref_conv2d(x, conv.weight.numpy(), conv.bias.numpy(), pads=(2, 2, 2, 2), dilation=(2, 2))
    np.testing.assert_allclose(conv(t(x)).numpy(), ref, rtol=1e-10, atol=1e-10)


def test_conv_transpose_output_size():
    tconv = nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1)
    x = gnn.randn(1, 2, 4, 4)
    assert tconv(x).shape == (1, 3, 7, 7)
    assert tconv(x, output_size=(8, 8)).shape == (1, 3, 8, 8)
    with pytest.raises(ValueError, match="not reachable"):
        tconv(x, output_size=(10, 10))


def test_conv_errors_are_clear():
    with pytest.raises(
        ValueError, match=r"Conv2d\(3, 8.*expected input \(N, 3, H, W\).*\(2, 4, 8, 8\)"
    ):
        nn.Conv2d(3, 8, 3)(gnn.randn(2, 4, 8, 8))
    with pytest.raises(ValueError, match="Conv2d: in_channels must be a positive integer, got 0"):
        nn.Conv2d(0, 8, 3)
    with pytest.raises(ValueError, match="out_channels must be a positive integer"):
        nn.ConvTranspose2d(2, 0, 3)
    with pytest.raises(ValueError, match="kernel_size must be an int >= 1"):
        nn.Conv2d(2, 2, 0)
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="padding_mode='reflect' is not supported"):
        nn.Conv2d(2, 2, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="'same' is not supported for strided"):
        nn.Conv2d(2, 2, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match=r"conv2d: input of shape \(1, 2, 5, 5\) has 2 channels"):
        F.conv2d(gnn.randn(1, 2, 5, 5), gnn.randn(4, 3, 3, 3))
    with pytest.raises(ValueError, match=r"conv2d: input of spatial size \(2, 2\) is too small"):
        F.conv2d(gnn.randn(1, 2, 2, 2), gnn.randn(4, 2, 3, 3))
    with pytest.raises(ValueError, match="output_padding must be smaller than stride or dilation"):
        nn.ConvTranspose2d(2, 2, 3, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="at most half"):
        F.max_pool2d(gnn.randn(1, 1, 6, 6), 2, padding=2)
    with pytest.raises(ValueError, match="too small"):
        nn.MaxPool2d(4)(gnn.randn(1, 1, 3, 3))
    with pytest.raises(ValueError, match=r"max_pool2d: expected a 3-D.*got shape \(4, 4\)"):
        F.max_pool2d(gnn.randn(4, 4), 2)


def test_pool_layers_and_flatten():
    x = rng.standard_normal((2, 3, 6, 6))
    mp = nn.MaxPool2d(2)
    assert mp.stride == 2
    np.testing.assert_array_equal(mp(t(x)).numpy(), ref_pool(x, (2, 2), (2, 2), (0, 0)))
    ap = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    ref = ref_pool(x, (3, 3), (1, 1), (1, 1), mode="avg", count_include_pad=False)
    np.testing.assert_allclose(ap(t(x)).numpy(), ref, rtol=1e-12)
    assert nn.Flatten()(t(x)).shape == (2, 108)
    assert nn.Flatten(0, 1)(t(x)).shape == (6, 6, 6)
    assert nn.Unflatten(1, (2, 54))(nn.Flatten()(t(x))).shape == (2, 2, 54)
    assert nn.Unflatten(-1, (3, -1))(t(x)).shape == (2, 3, 6, 3, 2)
    with pytest.raises(ValueError, match="cannot split dim 1 of size 3"):
        nn.Unflatten(1, (2, 2))(t(x))


def test_small_cnn_gradcheck_end_to_end():
    """conv -> relu -> max pool -> conv transpose -> avg pool, all parameters checked together."""
    gnn.manual_seed(1)
    conv = nn.Conv2d(2, 3, 3, padding=1, dtype="float64")
    up = nn.ConvTranspose2d(3, 2, 2, stride=2, dtype="float64")

    def net(x, w1, b1, w2):
        h = F.max_pool2d(F.relu(F.conv2d(x, w1, b1, padding=1)), 2)
        return F.avg_pool2d(F.conv_transpose2d(h, w2, stride=2), 2, stride=1)

    x = t(rng.standard_normal((2, 2, 4, 4)), True)
    assert gradcheck(net, [x, conv.weight, conv.bias, up.weight])


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_transposed_conv_gradients_land_in_their_homes(device):
    """On the optimizer's flat path ConvTranspose2d writes its weight gradient into the flat
    buffer (strided and stride-1 layouts), with the same values as the per-parameter path."""
    if device == "cuda" and not gnn.cuda.is_available():
        pytest.skip("needs CuPy (GNN_FAKE_CUDA=1 for the fake)")
    gnn.manual_seed(0)
    base = nn.Sequential(
        nn.ConvTranspose2d(3, 4, 3, stride=2), nn.ReLU(), nn.ConvTranspose2d(4, 2, 3, padding=1)
    )
    x = gnn.tensor(rng.standard_normal((2, 3, 4, 4)).astype(np.float32)).to(device)
    grads = []
    for foreach in (True, False):
        model = copy.deepcopy(base).to(device)
        opt = gnn.optim.Adam(model.parameters(), lr=1e-2, foreach=foreach)
        for _ in range(2):  # the flat buffer (and the homes) exist from the first step on
            opt.zero_grad()
            (model(x) ** 2).sum().backward()
            opt.step()
        grads.append([p.grad.numpy() for p in model.parameters()])
        if foreach:
            weights = [model[0].weight, model[2].weight]
            homes = [autograd.home_of(w) for w in weights]
            assert all(h is not None and w.grad.array is h[0] for w, h in zip(weights, homes))
    for got, want in zip(*grads):
        np.testing.assert_array_equal(got, want)
