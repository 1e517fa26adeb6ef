"""gnn.autocast's regions: nested in order, undone on exit, and per thread (as PyTorch's)."""

from __future__ import annotations

import threading

import gnn


def test_nested_regions_take_the_innermost_setting_and_restore_the_outer_one() -> None:
    assert not gnn.amp.is_autocast_enabled("cpu")
    with gnn.autocast("cpu"):
        assert gnn.amp.is_autocast_enabled("cpu")
        assert not gnn.amp.is_autocast_enabled("cuda")
        with gnn.autocast("cpu", enabled=False):
            assert not gnn.amp.is_autocast_enabled("cpu")
            x = gnn.ones(2, 2)
            assert (x @ x).dtype == gnn.float32
        assert gnn.amp.is_autocast_enabled("cpu")
        assert (gnn.ones(2, 2) @ gnn.ones(2, 2)).dtype == gnn.bfloat16
    assert not gnn.amp.is_autocast_enabled("cpu")


def test_a_region_left_by_an_exception_is_closed() -> None:
    try:
        with gnn.autocast("cpu"):
            raise KeyError("inside")
    except KeyError:
        pass
    assert not gnn.amp.is_autocast_enabled("cpu")


def test_another_thread_does_not_see_this_threads_region() -> None:
    seen: list[bool] = []
    inside = threading.Event()
    done = threading.Event()

    def other() -> None:
        inside.wait()
        seen.append(gnn.amp.is_autocast_enabled("cpu"))
        with gnn.autocast("cpu"):
            seen.append(gnn.amp.is_autocast_enabled("cpu"))
        done.set()

    worker = threading.Thread(target=other)
    worker.start()
    with gnn.autocast("cpu"):
        inside.set()
        done.wait(10)
        assert gnn.amp.is_autocast_enabled("cpu")  # the other thread's exit closed its own region
    worker.join(10)
    assert seen == [False, True]
