"""DataLoader worker processes: the loop each worker runs, get_worker_info(), error transport.

A worker receives (epoch, task, indices) on its own index queue, fetches and collates the batch
on the CPU, and puts (epoch, task, batch) on the result queue shared by all workers; the main
process puts the batches back in task order. Workers send NumPy data; the main process makes
Tensors of it. This module imports nothing heavy at the top: it is what a worker imports first.
"""

from __future__ import annotations

import os
import pickle
import queue
import random
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["WorkerInfo", "get_worker_info"]

# How often a waiting worker checks that its parent is still alive and the loader still open.
POLL_S = 1.0


@dataclass(frozen=True)
class WorkerInfo:
    """What a worker process knows about itself (gnn.data.get_worker_info() in a worker)."""

    id: int
    num_workers: int
    seed: int
    dataset: Any


_worker_info: WorkerInfo | None = None


def get_worker_info() -> WorkerInfo | None:
    """This worker's WorkerInfo (id, num_workers, seed, dataset) in a worker; None elsewhere."""
    return _worker_info


class WorkerError:
    """An exception raised in a worker, carried to the main process as its traceback text."""

    def __init__(self, worker_id: int, where: str) -> None:
        self.worker_id = worker_id
        self.where = where
        self.exc_type: type[BaseException] | None = None
        exc = sys.exc_info()[1]
        if exc is None:  # made only in an except clause, where the exception is the one caught
            raise RuntimeError("WorkerError: made outside the handling of an exception")
        self.type_name = type(exc).__name__
        self.text = traceback.format_exc()
        try:  # the type itself travels when it pickles (built-in and importable classes)
            pickle.loads(pickle.dumps(type(exc)))
            self.exc_type = type(exc)
        except Exception:  # a local class: fall back to RuntimeError
            self.exc_type = None

    def reraise(self) -> None:
        """Raise the worker's exception type (RuntimeError when it cannot be rebuilt) here."""
        msg = (
            f"Caught {self.type_name} in DataLoader worker process {self.worker_id} "
            f"{self.where}.\nOriginal {self.text}"
        )
        exc: BaseException
        try:
            exc = self.exc_type(msg) if self.exc_type is not None else RuntimeError(msg)
        except Exception:  # a type whose constructor wants other arguments
            exc = RuntimeError(msg)
        raise exc


def seed_worker(seed: int, worker_id: int) -> None:
    """Seed Python's `random`, NumPy's global generator and gnn's generators for this worker."""
    import numpy as np

    from gnn.config import manual_seed

    random.seed(seed)
    # NumPy's legacy seed takes 32 bits; mixing (worker id, seed) keeps workers apart
    np.random.seed(np.random.SeedSequence([worker_id, seed]).generate_state(4))
    manual_seed(seed)


def _parent_alive() -> bool:
    import multiprocessing

    parent = multiprocessing.parent_process()
    return parent is None or parent.is_alive()


def worker_loop(
    dataset: Any,
    fetch: Callable[[Any, Any], Any],
    index_queue: Any,
    result_queue: Any,
    done_event: Any,
    worker_init_fn: Callable[[int], None] | None,
    seed: int,
    worker_id: int,
    num_workers: int,
) -> None:
    """Serve fetch requests until None arrives, the loader closes or the parent process dies."""
    global _worker_info
    # Ctrl-C goes to the whole process group: the main process decides, workers keep quiet
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker_info = WorkerInfo(worker_id, num_workers, seed, dataset)
    init_error = None
    try:
        seed_worker(seed, worker_id)
        if worker_init_fn is not None:
            worker_init_fn(worker_id)
    except Exception:  # reported with the first batch asked of this worker
        init_error = WorkerError(worker_id, "in worker_init_fn")
    while not done_event.is_set():
        try:
            task = index_queue.get(timeout=POLL_S)
        except queue.Empty:
            if not _parent_alive():
                break
            continue
        if task is None:
            break
        epoch, task_id, indices = task
        try:
            if init_error is not None:
                payload = pickle.dumps(init_error)
            else:
                # pickled here, not in the queue's feeder thread, so an unpicklable batch is an
                # error the main process hears about instead of a batch that never arrives
                payload = pickle.dumps(fetch(dataset, indices), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # every error goes back to the main process
            payload = pickle.dumps(WorkerError(worker_id, f"(pid {os.getpid()})"))
        result_queue.put((epoch, task_id, payload))
    # do not wait at exit for the main process to read what is still buffered: it has gone
    # or stopped listening, and waiting could hang this process forever
    result_queue.cancel_join_thread()
    result_queue.close()
