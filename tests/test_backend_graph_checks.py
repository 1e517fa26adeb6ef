"""The id checks of a replayed CUDA graph (gnn/backend/cuda_graph.py, StreamCapture.replay).

A captured embedding lookup checks its ids inside the graph, into a running maximum of its own.
A check reports a bad id once; the next replay restarts that maximum from the eager lookups
since the check, so an id already reported does not come back, and an eager bad id is not lost.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import gnn
import gnn.cuda
from gnn import nn
from gnn.tensor import Tensor

pytestmark = pytest.mark.gpu


@pytest.fixture
def captured() -> tuple[Callable[[list[int]], None], Callable[[], Tensor], nn.Embedding]:
    """(set the static ids, replay and return the static output, the embedding of 7 rows)."""
    if not gnn.cuda.is_available():
        pytest.skip("needs CuPy and a CUDA device")
    emb = nn.Embedding(7, 3).to("cuda")
    ids = gnn.tensor(np.array([0, 1, 2]), device="cuda")
    emb(ids).sum().item()  # warm-up, checked
    g = gnn.cuda.CUDAGraph()
    with gnn.cuda.graph(g):
        out = emb(ids).sum()

    def set_ids(values: list[int]) -> None:
        ids.array[...] = gnn.tensor(np.array(values), device="cuda").array

    def replay() -> Tensor:
        g.replay()
        return out

    return set_ids, replay, emb


def test_a_reported_bad_id_is_not_reported_again_after_eager_lookups(captured) -> None:
    set_ids, replay, emb = captured
    set_ids([0, 9, 2])
    with pytest.raises(IndexError, match="id 9 is out of range"):
        replay().item()
    set_ids([0, 1, 2])
    emb(gnn.tensor(np.array([3, 4]), device="cuda"))  # eager, good ids, not checked yet
    assert np.isfinite(replay().item())


def test_an_eager_bad_id_before_a_replay_is_still_reported(captured) -> None:
    set_ids, replay, emb = captured
    assert np.isfinite(replay().item())
    emb(gnn.tensor(np.array([3, 8]), device="cuda"))  # eager, bad, not checked yet
    out = replay()  # good ids in the graph
    with pytest.raises(IndexError, match="id 8 is out of range"):
        out.item()
    assert np.isfinite(replay().item())  # reported once
