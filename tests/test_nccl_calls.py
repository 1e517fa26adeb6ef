"""gnn/backend/nccl.py's Communicator calls CuPy's NCCL bindings with the arguments their API
takes (pointers, counts in elements, NCCL's dtype and op codes, the current stream), checked
on the fake CuPy against a stand-in for `cupy.cuda.nccl` that records the calls."""

from __future__ import annotations

import types

import numpy as np
import pytest

from gnn.backend import cuda_available, get_backend

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA device"),
]


class _RecordingComm:
    def __init__(self, world_size: int, unique_id: object, rank: int) -> None:
        self.calls: list[tuple] = []
        self.made = (world_size, unique_id, rank)

    def __getattr__(self, collective: str):
        return lambda *args: self.calls.append((collective, *args))


@pytest.fixture
def comm(monkeypatch):
    from gnn.backend import nccl

    names = ("sum", "max", "min", "float32", "int64")
    codes = {f"NCCL_{name.upper()}": i for i, name in enumerate(names)}
    stub = types.SimpleNamespace(NcclCommunicator=_RecordingComm, **codes)
    monkeypatch.setattr(nccl, "_nccl", lambda: stub)
    xp = get_backend("cuda").xp
    monkeypatch.setattr(xp.cuda.Device, "use", lambda self: None, raising=False)
    c = nccl.Communicator(2, b"id", 1, 0)
    assert c.comm.made == (2, b"id", 1)
    return c, codes, xp


def test_collectives_pass_pointers_counts_codes_and_the_stream(comm) -> None:
    c, codes, xp = comm
    a = xp.zeros(6, dtype=np.float32)
    out = xp.zeros(12, dtype=np.float32)
    stream = xp.cuda.get_current_stream().ptr
    c.all_reduce(a, "max")
    c.broadcast(a, 0)
    c.all_gather(a, out)
    ptr = a.data.ptr
    f32 = codes["NCCL_FLOAT32"]
    assert c.comm.calls == [
        ("allReduce", ptr, ptr, 6, f32, codes["NCCL_MAX"], stream),
        ("bcast", ptr, 6, f32, 0, stream),
        ("allGather", ptr, out.data.ptr, 6, f32, stream),
    ]


def test_collectives_refuse_what_nccl_cannot_take(comm) -> None:
    c, _, xp = comm
    with pytest.raises(TypeError, match="C-contiguous CuPy array"):
        c.all_reduce(np.zeros(3, np.float32), "sum")
    with pytest.raises(TypeError, match="no NCCL type for dtype bool"):
        c.broadcast(xp.zeros(3, dtype=bool), 0)
    assert c.comm.calls == []
    c.destroy()
    assert c.comm is None
