"""The fake CuPy (tests/fake_gpu) is as strict as CuPy where gnn could slip.

These run only with GNN_FAKE_CUDA=1 (ci/check.sh does that run on machines without CuPy): the fake
must never be imported into an ordinary run, where it would make gnn see a GPU.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import FAKE_CUDA

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not FAKE_CUDA, reason="checks the fake CuPy: run with GNN_FAKE_CUDA=1"),
]


@pytest.fixture
def cp():
    import cupy

    assert getattr(cupy, "FAKE", False), "GNN_FAKE_CUDA=1 but the real CuPy was imported"
    return cupy


def test_arrays_refuse_implicit_conversion_to_numpy(cp) -> None:
    a = cp.asarray(np.arange(6.0))
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(a)
    assert isinstance(cp.asnumpy(a), np.ndarray) and isinstance(a.get(), np.ndarray)


@pytest.mark.parametrize(
    "mix",
    [
        lambda cp, d, h: d + h,
        lambda cp, d, h: h * d,
        lambda cp, d, h: cp.multiply(d, h),
        lambda cp, d, h: np.exp(h) + d,
        lambda cp, d, h: cp.concatenate([d, h]),
        lambda cp, d, h: cp.matmul(d, h),
        lambda cp, d, h: d.dot(h),
        lambda cp, d, h: cp.where(d > 0, d, h),
    ],
)
def test_numpy_arrays_are_refused_as_operands(cp, mix) -> None:
    d, h = cp.asarray(np.ones(3)), np.ones(3)
    with pytest.raises(TypeError):
        mix(cp, d, h)


def test_transfers_copy(cp) -> None:
    host = np.zeros(3)
    dev = cp.asarray(host)
    host[0] = 1.0
    back = cp.asnumpy(dev)
    dev[1] = 2.0
    assert float(dev[0]) == 0.0 and back[1] == 0.0


def test_reductions_and_integer_indexing_give_device_arrays(cp) -> None:
    a = cp.asarray(np.arange(6.0).reshape(2, 3))
    for value in (a.sum(), a[1, 2], cp.max(a), cp.count_nonzero(a)):
        assert isinstance(value, cp.ndarray) and value.shape == ()
    assert float(a.sum()) == 15.0 and int(cp.count_nonzero(a)) == 5


def test_views_share_memory_and_out_is_returned(cp) -> None:
    a = cp.zeros((2, 3))
    a[:, 1] += 1.0
    a.T[2] = 5.0
    out = cp.empty((2, 3))
    assert cp.add(a, 1.0, out=out) is out
    np.testing.assert_array_equal(cp.asnumpy(out), [[1, 2, 6], [1, 2, 6]])


def test_only_what_cupy_has(cp) -> None:
    with pytest.raises(AttributeError):
        cp.insert  # noqa: B018  (NumPy has it, CuPy 14 does not)
    with pytest.raises(AttributeError):
        cp.zeros(2).resize  # noqa: B018
    with pytest.raises(AttributeError, match="permutation"):
        cp.random.default_rng(0).permutation(3)
    with pytest.raises(TypeError):
        cp.add(cp.ones(2), 1.0, where=cp.ones(2, dtype=bool))


def test_setitem_and_scatter_add_take_host_data_as_cupy_does(cp) -> None:
    import cupyx

    a = cp.zeros(4)
    a[np.array([0, 0, 2])] = np.array([1.0, 2.0, 3.0])  # advanced index: copied over
    with pytest.raises(TypeError, match="fill"):
        a[1:3] = np.array([1.0, 2.0])  # basic index: CuPy calls fill(), which takes a scalar
    cupyx.scatter_add(a, np.array([1, 1]), cp.ones(2))
    np.testing.assert_array_equal(cp.asnumpy(a), [2, 2, 3, 0])
    with pytest.raises(TypeError, match="int64"):
        cupyx.scatter_add(cp.zeros(2, dtype=np.int64), np.array([0]), cp.ones(1, dtype=np.int64))


def test_new_arrays_hold_garbage_not_zeros(cp) -> None:
    assert np.isnan(cp.asnumpy(cp.empty(3))).all()
    assert (cp.asnumpy(cp.empty_like(cp.zeros(2, dtype=np.int64))) == -7).all()


def test_kernel_launches_are_checked_against_the_c_signature(cp) -> None:
    from gnn.backend.kernels import kernel_source

    forward = cp.RawModule(code=kernel_source("sigmoid"), options=()).get_function(
        "sigmoid_forward_f32"
    )
    x = cp.asarray(np.linspace(-3, 3, 10, dtype=np.float32))
    y = cp.empty(10, dtype=np.float32)
    forward((1,), (256,), (x, y, np.int64(10)))
    np.testing.assert_allclose(cp.asnumpy(y), 1 / (1 + np.exp(-np.linspace(-3, 3, 10))), 1e-6)
    bad_launches = [
        ((1,), (256,), (x, y, 10), TypeError),  # a Python int goes over as 64 bits, not long long
        ((1,), (256,), (x, y, np.int32(10)), TypeError),
        ((1,), (256,), (x.astype(np.float64), y, np.int64(10)), TypeError),
        ((1,), (256,), (x[::2], y, np.int64(5)), ValueError),  # not contiguous
        ((1,), (2048,), (x, y, np.int64(10)), ValueError),  # over __launch_bounds__(1024)
        ((1,), (256,), (x, y), TypeError),
    ]
    for grid, block, args, error in bad_launches:
        with pytest.raises(error):
            forward(grid, block, args)
    reduce = cp.RawModule(code=kernel_source("softmax_cross_entropy")).get_function(
        "softmax_ce_reduce_f32"
    )
    with pytest.raises(ValueError, match="whole warps"):
        reduce((1,), (48,), ())


def test_numpy_dispatch_keeps_the_fake_definitions(cp) -> None:
    """np.empty_like(device array) goes through __array_function__ and must stay poisoned."""
    assert np.isnan(cp.asnumpy(np.empty_like(cp.zeros(3)))).all()
    assert np.isnan(cp.asnumpy(cp.empty(2))).all()  # and cupy.empty was not replaced by it


def test_host_reads_are_counted(cp) -> None:
    a = cp.arange(4)
    before = cp.host_reads
    float(a[1]), int(a.sum()), bool(a[0]), a.tolist(), cp.asnumpy(a)
    after_reads = cp.host_reads
    b = a * 2 + a.sum()  # device work only
    assert after_reads - before == 5 and cp.host_reads == after_reads and b.shape == (4,)


def test_counting_follows_the_rules(cp) -> None:
    """Each op below launches by a rule of the module docstring; the totals add them up."""
    host = np.ones((4, 3), np.float32)  # 48 bytes
    a = cp.asarray(host)
    with cp.counting() as c:
        b = a * 2  # ufunc: 1 launch, 1 alloc, reads 48 writes 48
        b += 1  # ufunc with out=: 1 launch, no alloc, 96 bytes
        b.reshape(12)  # a view: nothing
        a.T  # noqa: B018 (a view: nothing)
        b.sum()  # reduction: 1 launch, 1 alloc, 48 + 4 bytes
        cp.zeros((4, 3), np.float32)  # memset: 1 launch, 1 alloc, 48 bytes
        cp.empty((2,), np.float32)  # allocation only
        a.T @ a  # F-contiguous 2-D operand: cuBLAS takes it, 1 matmul launch, 48+48+36 bytes
        cp.ones((2, 3, 4), np.float32).transpose(0, 2, 1) @ cp.ones((2, 3, 5), np.float32)
        # ^ two fills (2 launches, 96+120 bytes); the transposed 3-D operand is copied (1 launch,
        #   192 bytes), then the matmul (1 launch, 96+120+160 bytes)
        b[0] = 5  # setitem: 1 launch, 12 bytes
        b[cp.arange(2)]  # arange (1 launch, 16 bytes) + advanced getitem (1 launch, 16+24+24)
        cp.asarray(host)  # a host-to-device copy (not a launch) and an allocation
        float(b[1, 1])  # a basic index (a view) and a sync
    assert c.launches == 12
    assert (c.memsets, c.hidden_copies, c.syncs, c.h2d) == (1, 1, 1, 1)
    assert c.allocs == 12  # all but +=, setitem and the views: the h2d copy's one too
    matmul_bytes = (48 + 48 + 36) + (96 + 120 + 160)
    other = 96 + 96 + 52 + 48 + 96 + 120 + 192 + 12 + 16 + 64
    assert c.matmul_bytes == matmul_bytes and c.bytes_outside_matmul == other
    assert c.by_name()["matmul"] == 2 and c.by_source() == {"<outside gnn>": 12}
    assert (
        c.by_source("allocs") == {"<outside gnn>": 12}
        and c.by_source("syncs")["<outside gnn>"] == 1
    )


def test_counting_attributes_launches_to_gnn_code(cp) -> None:
    """A launch is charged to the first gnn frame outside gnn/backend (and the backend's)."""
    import gnn

    x = gnn.tensor(np.arange(6, dtype=np.float32), device="cuda")
    ids = gnn.tensor(np.array([0, 5]), device="cuda")
    with cp.counting() as c:
        _ = x * 3
        _ = gnn.nn.functional.embedding(ids, x.reshape(6, 1))
    sources = c.by_source()
    assert any(s.startswith("gnn/") for s in sources), sources
    assert all(s != "<outside gnn>" for s in sources), sources


def test_counting_nests_and_stops(cp) -> None:
    a = cp.ones(3)
    with cp.counting() as outer:
        a + 1
        with cp.counting() as inner:
            a - 1
    a * 2  # not counted: no block is open
    assert (outer.launches, inner.launches) == (2, 1)
