"""The CUDA-on-CPU emulator itself: half conversions, barriers, shared memory, warp operations.

Runs in the ordinary suite wherever g++ exists: the kernel lanes of ci/emulate.sh rely on these.
"""

from __future__ import annotations

import ctypes
import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")

HERE = Path(__file__).resolve().parent


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"gnn_cuda_cpu_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


emulator = _module("emulator")


def _signatures(code: str) -> dict:
    import re

    pattern = r'extern "C" __global__ void __launch_bounds__\((\d+)\)\s*(\w+)\(([^)]*)\)'
    kernels = {}
    for bound, name, params in re.findall(pattern, code):
        parsed = []
        for param in params.split(","):
            words = param.replace("__restrict__", " ").replace("const", " ").replace("*", " * ")
            words = words.split()[:-1]
            parsed.append((" ".join(w for w in words if w != "*"), "*" in words))
        kernels[name] = (int(bound), parsed)
    return kernels


def _ptr(a: np.ndarray) -> ctypes.c_void_p:
    return ctypes.c_void_p(a.ctypes.data)


@pytest.fixture(scope="module")
def lib():
    code = (HERE / "selftest.cu").read_text()
    return emulator.Library(emulator.build(code, _signatures(code), ""), _signatures(code), "")


def test_half_to_float_is_exact_for_every_half(lib):
    bits = np.arange(2**16, dtype=np.uint16)
    out = np.empty(bits.size, np.float32)
    lib._lib.gnn_emu_half2float(_ptr(bits), _ptr(out), ctypes.c_longlong(bits.size))
    want = bits.view(np.float16).astype(np.float32)
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(out), nan)
    assert out[~nan].tobytes() == want[~nan].tobytes()  # bit for bit, signed zeros too


def test_float_to_half_rounds_to_nearest_even(lib):
    rng = np.random.default_rng(0)
    finite = np.arange(2**16, dtype=np.uint16).view(np.float16)
    finite = finite[np.isfinite(finite)].astype(np.float64)
    finite.sort()
    ties = (finite[:-1] + finite[1:]) / 2  # halfway between neighbours: exact in float32
    near = np.concatenate(
        [
            np.nextafter(ties.astype(np.float32), np.float32(np.inf)),
            np.nextafter(ties.astype(np.float32), np.float32(-np.inf)),
        ]
    )
    edges = np.array(
        [65504, 65519.996, 65520, 1e6, np.inf, -np.inf, np.nan, 2.0**-25, 2.0**-26, 1e-40, -0.0],
        np.float32,
    )
    randoms = rng.integers(0, 2**32, 2**20, dtype=np.uint64).astype(np.uint32).view(np.float32)
    x = np.concatenate([ties.astype(np.float32), near, edges, randoms])
    out = np.empty(x.size, np.uint16)
    lib._lib.gnn_emu_float2half_rn(_ptr(x), _ptr(out), ctypes.c_longlong(x.size))
    with np.errstate(over="ignore", invalid="ignore"):
        want = x.astype(np.float16)
    got = out.view(np.float16)
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    assert got[~nan].tobytes() == want[~nan].tobytes()


def test_bfloat16_conversions_round_to_nearest_even(lib):
    ml_dtypes = pytest.importorskip("ml_dtypes")  # NumPy has no bfloat16
    bits = np.arange(2**16, dtype=np.uint16)
    out = np.empty(bits.size, np.float32)
    lib._lib.gnn_emu_bfloat162float(_ptr(bits), _ptr(out), ctypes.c_longlong(bits.size))
    want = bits.view(ml_dtypes.bfloat16).astype(np.float32)
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(out), nan) and out[~nan].tobytes() == want[~nan].tobytes()
    finite = np.sort(want[np.isfinite(want)].astype(np.float64))
    ties = ((finite[:-1] + finite[1:]) / 2).astype(np.float32)  # exact in float32
    rng = np.random.default_rng(2)
    randoms = rng.integers(0, 2**32, 2**20, dtype=np.uint64).astype(np.uint32).view(np.float32)
    x = np.concatenate([ties, np.nextafter(ties, np.float32(np.inf)), randoms])
    x = x[~np.isnan(x)]  # NaN payloads differ between converters; NaN-ness is checked above
    got = np.empty(x.size, np.uint16)
    lib._lib.gnn_emu_float2bfloat16_rn(_ptr(x), _ptr(got), ctypes.c_longlong(x.size))
    assert got.tobytes() == x.astype(ml_dtypes.bfloat16).view(np.uint16).tobytes()


def test_barriers_and_dynamic_shared_memory(lib):
    x = np.random.default_rng(1).random(1000).astype(np.float32)
    out = np.full(4, np.nan, np.float32)
    lib.launch("block_sums", 4, 256, 256 * 4, [x, out, np.int64(x.size)])
    want = np.add.reduceat(np.pad(x, (0, 24)), [0, 256, 512, 768])
    np.testing.assert_allclose(out, want, rtol=1e-5)


def test_warp_shuffles_and_votes(lib):
    threads = 64
    out = np.full(8 * threads, -1, np.int32)
    lib.launch("warp_ops", 1, threads, 0, [out])
    got = out.reshape(threads, 8)
    for t in range(threads):
        lane = t % 32
        want = [
            lane ^ 1,
            lane + 3 if lane + 3 < 32 else lane,  # from outside the warp: its own value
            lane - 2 if lane >= 2 else lane,
            50,
            # xor 12 within 8-lane segments: a later segment's lane gives the own value
            lane if (lane ^ 12) > (lane | 7) else lane ^ 12,
            np.int32(np.uint32(0xAAAAAAAA).view(np.int32)),
            1,
            1,
        ]
        assert list(got[t]) == want, f"thread {t}"


def test_atomics_count_every_thread_of_every_block(lib):
    counter = np.zeros(1, np.uint64)
    lib.launch("count_threads", 5, 96, 0, [counter])
    assert counter[0] == 5 * 96


def test_divergent_syncthreads_fails_the_launch(lib):
    with pytest.raises(RuntimeError, match="divergent"):
        lib.launch("divergent_barrier", 1, 32, 0, [np.zeros(32, np.int32)])


def test_shuffle_from_a_lane_that_left_fails_the_launch(lib):
    with pytest.raises(RuntimeError, match="did not take part"):
        lib.launch("shuffle_from_exited_lane", 1, 32, 0, [np.zeros(32, np.int32)])


def test_misaligned_vector_access_fails_the_launch(lib):
    with pytest.raises(RuntimeError, match="misaligned address: a float4"):
        lib.launch("misaligned_load", 1, 32, 0, [np.zeros(8, np.float32), np.zeros(32, np.float32)])


def test_more_than_1024_threads_is_refused(lib):
    with pytest.raises(RuntimeError, match="invalid launch"):
        lib.launch("count_threads", 1, 1025, 0, [np.zeros(1, np.uint64)])
