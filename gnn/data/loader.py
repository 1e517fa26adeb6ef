"""DataLoader: a Dataset's batches in a sampler's order, optionally from worker processes.

With num_workers > 0 each worker process fetches and collates whole batches on the CPU (NumPy)
and the main process turns them into Tensors, in the sampler's order. Workers start with the
'forkserver' method by default (see DataLoader), and end when their iterator is exhausted,
deleted or fails (or, with persistent_workers, when the loader goes).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from gnn.backend import get_backend
from gnn.data.sampler import (
    BatchSampler,
    RandomSampler,
    SequentialSampler,
    current_rng,
    resolve_generator,
)
from gnn.tensor import Tensor

__all__ = ["DataLoader", "default_collate", "default_convert"]


# ---- collation -------------------------------------------------------------------------------


class _FromTensor:
    """A Tensor's values on their way from a worker, to become a Tensor again unchanged.

    Unlike NumPy samples they get no float64 -> default dtype cast.
    """

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def __reduce__(self) -> tuple:
        return (_FromTensor, (self.array,))


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def _rebuild(like: Any, items: list) -> Any:
    """A container of the same kind as `like` (namedtuple, tuple, list) holding `items`."""
    if _is_namedtuple(like):
        return type(like)(*items)
    if isinstance(like, tuple):
        return tuple(items)
    return items


def _rebuild_mapping(like: Mapping, out: dict) -> Any:
    """`out` as a mapping of the same type as `like` when that type can be built from a dict
    (an OrderedDict, a dict subclass), else `out` itself."""
    if type(like) is dict:
        return out
    # Any: a Mapping subclass's constructor is its own (Mapping declares none), hence the try
    make: Any = type(like)
    try:
        return make(out)
    except TypeError:
        return out


def _to_tensor(a: Any) -> Any:
    if isinstance(a, (Tensor, _FromTensor)):
        return a if isinstance(a, Tensor) else Tensor.wrap(a.array, get_backend("cpu"))
    if isinstance(a, np.ndarray):
        if a.dtype == np.float64:
            # float64 sample arrays become the default float dtype, as model weights are
            from gnn.config import get_default_dtype

            a = a.astype(get_default_dtype())
        return Tensor.wrap(a, get_backend("cpu"))
    return a


def _to_host(a: Any) -> Any:
    """What a worker sends for one leaf: NumPy arrays, Tensors as marked NumPy arrays."""
    if isinstance(a, Tensor):
        return _FromTensor(np.asarray(a.detach().numpy()))
    return a


def _leaf(a: Any, host: bool) -> Any:
    return _to_host(a) if host else _to_tensor(a)


def _collate(batch: Any, host: bool) -> Any:
    if isinstance(batch, tuple):  # already batched by __getitems__
        return tuple(_leaf(b if isinstance(b, Tensor) else np.asarray(b), host) for b in batch)
    if not isinstance(batch, list) or not batch:
        raise TypeError(
            f"default_collate: expected a non-empty list of samples, got {type(batch).__name__}"
        )
    first = batch[0]
    if isinstance(first, Tensor):
        if host:
            return _FromTensor(np.stack([np.asarray(s.detach().numpy()) for s in batch]))
        be = first.backend  # one raw stack: a new leaf batch, no graph through the samples
        return Tensor.wrap(be.xp.stack([s.array for s in batch]), be)
    if isinstance(first, (np.ndarray, np.generic, int, float, bool)):
        if isinstance(first, np.ndarray) and first.dtype.kind in "OUSV":
            raise TypeError(
                f"default_collate: NumPy arrays of dtype {first.dtype} cannot become a Tensor; "
                "pass a collate_fn for such samples"
            )
        return _leaf(np.stack([np.asarray(s) for s in batch]), host)
    if isinstance(first, Mapping):
        return _rebuild_mapping(first, {k: _collate([s[k] for s in batch], host) for k in first})
    if isinstance(first, (tuple, list)):
        if any(len(s) != len(first) for s in batch):
            raise ValueError("default_collate: samples in a batch have different numbers of fields")
        return _rebuild(first, [_collate(list(field), host) for field in zip(*batch)])
    return batch  # strings and other objects stay a list


def default_collate(batch: Any) -> Any:
    """Stack a list of samples into Tensors, keeping namedtuples, tuples, lists and dicts of fields.

    Tensors stack on their device; NumPy arrays and numbers become CPU Tensors (float64 becomes
    the default float dtype); strings and other objects stay a list. A batch that already is a
    tuple of Tensors/arrays (from a dataset's __getitems__) is turned into Tensors field by field.
    """
    return _collate(batch, host=False)


def _convert(data: Any, host: bool) -> Any:
    if isinstance(data, (Tensor, np.ndarray, np.generic)):
        if not isinstance(data, Tensor) and data.dtype.kind in "OUSV":
            return data  # strings and objects have no Tensor form
        return _leaf(data if isinstance(data, Tensor) else np.asarray(data), host)
    if isinstance(data, Mapping):
        return _rebuild_mapping(data, {k: _convert(v, host) for k, v in data.items()})
    if isinstance(data, (tuple, list)) and not isinstance(data, str):
        return _rebuild(data, [_convert(v, host) for v in data])
    return data


def default_convert(data: Any) -> Any:
    """One sample as the loader gives it without batching (batch_size=None): NumPy arrays and
    scalars inside it become CPU Tensors; Python numbers, strings and Tensors are kept."""
    return _convert(data, host=False)


def _from_host(data: Any) -> Any:
    """A worker's default-collated batch back in the main process: arrays become Tensors."""
    if isinstance(data, (np.ndarray, _FromTensor)):
        return _to_tensor(data)
    if isinstance(data, Mapping):
        return _rebuild_mapping(data, {k: _from_host(v) for k, v in data.items()})
    if isinstance(data, (tuple, list)):
        return _rebuild(data, [_from_host(v) for v in data])
    return data


class _Fetch:
    """Fetch and collate one batch (or one sample without auto-batching) of a dataset.

    A module-level class so it pickles into worker processes; host=True (in a worker) makes the
    default collation produce NumPy data, which the main process turns into Tensors.
    """

    def __init__(self, batched: bool, collate_fn: Callable[[Any], Any] | None, host: bool) -> None:
        self.batched = batched
        self.collate_fn = collate_fn  # None: the default (collate or convert)
        self.host = host

    def __call__(self, dataset: Any, index: Any) -> Any:
        if not self.batched:
            sample = dataset[index]
            if self.collate_fn is None:
                return _convert(sample, self.host)
            return self.collate_fn(sample)
        if self.collate_fn is not None:
            return self.collate_fn([dataset[i] for i in index])
        if hasattr(dataset, "__getitems__"):  # one indexing operation for the whole batch
            return _collate(dataset.__getitems__(list(index)), self.host)
        return _collate([dataset[i] for i in index], self.host)


# ---- the loader -------------------------------------------------------------------------------


def _default_start_method() -> str:
    import multiprocessing

    methods = multiprocessing.get_all_start_methods()
    return "forkserver" if "forkserver" in methods else "spawn"


class DataLoader:
    """Iterate a dataset in batches, in one process or with worker processes.

    batch_size: samples per batch (None: single samples, not collated); shuffle: a new order
    each epoch (a RandomSampler); sampler: the order of indices instead (excludes shuffle);
    batch_sampler: lists of indices instead (excludes batch_size, shuffle, sampler, drop_last);
    drop_last: skip the final short batch; collate_fn: a list of samples -> a batch (default:
    default_collate; default_convert without batching); generator: a numpy.random.Generator or
    an int seed for shuffling and worker seeds, else gnn's seeded CPU generator.

    num_workers > 0 fetches batches in that many worker processes, prefetch_factor batches
    ahead per worker (default 2), and returns them in the sampler's order. Workers start with
    `multiprocessing_context` (default 'forkserver': safe with threads and a CUDA context in
    this process, unlike 'fork'; the dataset, collate_fn and worker_init_fn must pickle, and a
    script needs `if __name__ == "__main__":`; pass 'fork' for lambdas). Each iteration draws a
    base seed from `generator`/gnn's generator; worker i seeds random, NumPy and gnn with
    base + i and then calls worker_init_fn(i). persistent_workers keeps the workers across
    epochs; timeout (seconds, 0: none) bounds the wait for one batch. pin_memory and
    pin_memory_device are accepted and do nothing: batches are CPU Tensors; move them with .to().
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int | None = 1,
        shuffle: bool | None = None,
        sampler: Any = None,
        batch_sampler: Any = None,
        num_workers: int = 0,
        collate_fn: Callable[[Any], Any] | None = None,
        pin_memory: bool = False,
        drop_last: bool = False,
        timeout: float = 0,
        worker_init_fn: Callable[[int], None] | None = None,
        multiprocessing_context: Any = None,
        generator: Any = None,
        *,
        prefetch_factor: int | None = None,
        persistent_workers: bool = False,
        pin_memory_device: str = "",
    ) -> None:
        if not isinstance(num_workers, int) or isinstance(num_workers, bool) or num_workers < 0:
            raise ValueError(
                "num_workers option should be a non-negative integer; use num_workers=0 to "
                f"disable multiprocessing (got {num_workers!r})"
            )
        if not isinstance(timeout, (int, float)) or timeout < 0:
            raise ValueError(f"timeout option should be non-negative, got {timeout!r}")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError(
                "prefetch_factor option could only be specified in multiprocessing: let "
                "num_workers > 0 to enable multiprocessing, otherwise set prefetch_factor to None."
            )
        if num_workers > 0 and prefetch_factor is None:
            prefetch_factor = 2
        if prefetch_factor is not None and (
            not isinstance(prefetch_factor, int) or prefetch_factor < 1
        ):
            raise ValueError(
                f"prefetch_factor option should be a positive integer, got {prefetch_factor!r}"
            )
        if persistent_workers and num_workers == 0:
            raise ValueError("persistent_workers option needs num_workers > 0")
        if batch_size is not None and (
            not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0
        ):
            raise ValueError(
                f"DataLoader: batch_size must be a positive integer or None, got {batch_size!r}"
            )
        if sampler is not None:
            if shuffle:
                raise ValueError(
                    "DataLoader: sampler option is mutually exclusive with shuffle (sampler and "
                    "shuffle=True exclude each other: the sampler decides the order, and "
                    "DistributedSampler has its own shuffle)"
                )
            if not hasattr(sampler, "__iter__"):
                raise TypeError(
                    "DataLoader: sampler must be an iterable of indices, got "
                    f"{type(sampler).__name__}"
                )
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError(
                    "batch_sampler option is mutually exclusive with batch_size, shuffle, "
                    "sampler, and drop_last"
                )
            if not hasattr(batch_sampler, "__iter__"):
                raise TypeError(
                    "DataLoader: batch_sampler must be an iterable of lists of indices, got "
                    f"{type(batch_sampler).__name__}"
                )
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError(
                "batch_size=None option disables auto-batching and is mutually exclusive with "
                "drop_last"
            )
        if collate_fn is not None and not callable(collate_fn):
            raise TypeError(f"DataLoader: collate_fn must be callable, got {collate_fn!r}")
        if worker_init_fn is not None and not callable(worker_init_fn):
            raise TypeError(f"DataLoader: worker_init_fn must be callable, got {worker_init_fn!r}")
        self.generator = resolve_generator(generator, "DataLoader")
        if sampler is None:
            sampler = (
                RandomSampler(dataset, generator=self.generator)
                if shuffle
                else SequentialSampler(dataset)
            )
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, bool(drop_last))
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.num_workers = num_workers
        self.collate_fn = collate_fn or (
            default_collate if batch_sampler is not None else default_convert
        )
        self.pin_memory = bool(pin_memory)  # accepted for PyTorch scripts; batches stay on CPU
        self.pin_memory_device = pin_memory_device
        self.timeout = float(timeout)
        self.worker_init_fn = worker_init_fn
        self.prefetch_factor = prefetch_factor
        self.persistent_workers = bool(persistent_workers)
        self.multiprocessing_context = self._check_context(multiprocessing_context)
        if num_workers > 0:
            _check_host_dataset(dataset)
        self._iterator: _WorkerIter | None = None

    def _check_context(self, context: Any) -> Any:
        if context is None:
            return None
        if self.num_workers == 0:
            raise ValueError(
                "multiprocessing_context can only be used with multi-process loading "
                "(num_workers > 0)"
            )
        if isinstance(context, str):
            import multiprocessing

            if context not in multiprocessing.get_all_start_methods():
                raise ValueError(
                    f"multiprocessing_context option should specify a valid start method in "
                    f"{multiprocessing.get_all_start_methods()}, but got {context!r}"
                )
            return multiprocessing.get_context(context)
        if not hasattr(context, "Process") or not hasattr(context, "Queue"):
            raise TypeError(
                "multiprocessing_context option should be a start method name or a "
                f"multiprocessing context, got {type(context).__name__}"
            )
        return context

    @property
    def _index_sampler(self) -> Any:
        return self.batch_sampler if self.batch_sampler is not None else self.sampler

    def _fetcher(self, host: bool) -> _Fetch:
        default = self.collate_fn in (default_collate, default_convert)
        return _Fetch(self.batch_sampler is not None, None if default else self.collate_fn, host)

    def __iter__(self) -> Iterator[Any]:
        if self.num_workers == 0:
            return self._single_process()
        if not self.persistent_workers:
            return _WorkerIter(self)
        if self._iterator is None or self._iterator.closed:
            self._iterator = _WorkerIter(self)
        else:
            self._iterator.start_epoch()
        return self._iterator

    def _single_process(self) -> Iterator[Any]:
        fetch = self._fetcher(host=False)
        for index in self._index_sampler:
            yield fetch(self.dataset, index)

    def __len__(self) -> int:
        return len(self._index_sampler)

    def __del__(self) -> None:
        it = getattr(self, "_iterator", None)
        if it is not None:
            it.close()


class _WorkerIter:
    """One set of worker processes and the batches they fetch, in the sampler's order.

    Batch k goes to worker k % num_workers on that worker's index queue, tagged with the epoch;
    results arrive on one queue in any order and wait in a buffer until their turn.
    """

    def __init__(self, loader: DataLoader) -> None:
        from gnn.data import worker

        # the iterator keeps what it needs, not the loader, so no reference cycle delays the
        # shutdown of its workers until the garbage collector runs
        self._dataset = loader.dataset
        self._index_sampler = loader._index_sampler
        self._num_workers = loader.num_workers
        self._prefetch = loader.prefetch_factor or 2
        self._timeout = loader.timeout
        self._to_tensors = loader.collate_fn in (default_collate, default_convert)
        self._persistent = loader.persistent_workers
        self._epoch = 0
        self.closed = False
        self._workers: list[Any] = []
        self._index_queues: list[Any] = []
        ctx = loader.multiprocessing_context
        if ctx is None:
            import multiprocessing

            ctx = multiprocessing.get_context(_default_start_method())
        if ctx.get_start_method() == "forkserver":
            _preload_gnn(ctx)
        self._result_queue = ctx.Queue()
        self._done = ctx.Event()
        base_seed = _draw_base_seed(loader.generator)
        fetch = loader._fetcher(host=True)
        try:
            for wid in range(self._num_workers):
                index_queue = ctx.Queue()
                # daemon: the workers die with this process even if nobody closes the loader
                proc = ctx.Process(
                    target=worker.worker_loop,
                    args=(
                        self._dataset,
                        fetch,
                        index_queue,
                        self._result_queue,
                        self._done,
                        loader.worker_init_fn,
                        base_seed + wid,
                        wid,
                        self._num_workers,
                    ),
                    daemon=True,
                )
                self._index_queues.append(index_queue)
                proc.start()
                self._workers.append(proc)
        except Exception as e:
            self.close()
            if isinstance(e, (pickle.PicklingError, AttributeError, TypeError)):
                method = ctx.get_start_method()
                raise TypeError(
                    f"DataLoader(num_workers={self._num_workers}): the dataset, collate_fn and "
                    f"worker_init_fn are pickled to each worker under the {method!r} start "
                    f"method, and that failed ({e}). Define them at module level (no lambdas "
                    "or local functions), or pass multiprocessing_context='fork'."
                ) from e
            raise
        self.start_epoch()

    def start_epoch(self) -> None:
        """Start a new pass over the sampler (persistent workers: the same processes)."""
        if self.closed:
            raise RuntimeError("DataLoader: this iterator's workers have been shut down")
        self._epoch += 1  # results still arriving from an abandoned epoch are dropped
        self._sampler_iter = iter(self._index_sampler)
        self._sent = self._received = 0
        self._buffer: dict[int, bytes] = {}
        self._exhausted = False
        for _ in range(self._prefetch * self._num_workers):
            self._send_one()

    def _send_one(self) -> None:
        if self._exhausted:
            return
        try:
            index = next(self._sampler_iter)
        except StopIteration:
            self._exhausted = True
            return
        self._index_queues[self._sent % self._num_workers].put((self._epoch, self._sent, index))
        self._sent += 1

    def __iter__(self) -> _WorkerIter:
        return self

    def __len__(self) -> int:
        return len(self._index_sampler)

    def __next__(self) -> Any:
        from gnn.data.worker import WorkerError

        if self.closed:
            raise StopIteration
        while self._received not in self._buffer:
            if self._received >= self._sent:  # nothing in flight: the epoch is over
                if not self._persistent:  # persistent workers wait for the next epoch
                    self.close()
                raise StopIteration
            epoch, task, payload = self._get()
            if epoch == self._epoch:
                self._buffer[task] = payload
        payload = self._buffer.pop(self._received)
        self._received += 1
        self._send_one()
        data = pickle.loads(payload)
        if isinstance(data, WorkerError):
            self.close()
            data.reraise()
        return _from_host(data) if self._to_tensors else data

    def _get(self) -> tuple:
        import queue
        import time

        from gnn.data.worker import POLL_S

        start = time.monotonic()
        while True:
            wait = POLL_S if self._timeout <= 0 else min(POLL_S, self._timeout)
            try:
                return self._result_queue.get(timeout=wait)
            except queue.Empty:
                pass
            for proc in self._workers:
                if not proc.is_alive():
                    self.close()
                    raise RuntimeError(
                        f"DataLoader worker (pid {proc.pid}) exited unexpectedly with exit "
                        f"code {proc.exitcode}"
                    )
            if self._timeout > 0 and time.monotonic() - start >= self._timeout:
                self.close()
                raise RuntimeError(f"DataLoader timed out after {self._timeout:g} seconds")

    def close(self) -> None:
        """Stop the workers and wait for them (terminating any that do not end), once."""
        if self.closed:
            return
        self.closed = True
        try:
            self._done.set()
            for q in self._index_queues:
                q.put(None)
            for proc in self._workers:
                proc.join(timeout=5.0)
                if proc.is_alive():  # stuck in user code: no batch is worth a hung exit
                    proc.terminate()
                    proc.join(timeout=5.0)
        finally:
            for q in [*self._index_queues, self._result_queue]:
                q.cancel_join_thread()
                q.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: modules may be gone
            pass


def _check_host_dataset(dataset: Any) -> None:
    """Refuse a TensorDataset on a GPU for worker processes, which only ever use the CPU."""
    for t in getattr(dataset, "tensors", ()):
        if isinstance(t, Tensor) and t.device.type != "cpu":
            raise ValueError(
                f"DataLoader(num_workers > 0): the dataset holds tensors on {t.device}, and "
                "worker processes work on the CPU only; keep the dataset on the CPU and move "
                "each batch with .to(device), or use num_workers=0"
            )


def _preload_gnn(ctx: Any) -> None:
    """Have the fork server import gnn.data before it forks workers, if it is not running yet.

    Without it every worker imports gnn and NumPy afresh (about 0.3 s each; Python 3.11's fork
    server does not preload __main__ either). Only an untouched, not yet started server is
    changed: a preload the program chose itself is kept.
    """
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    if getattr(server, "_forkserver_pid", 0) is None and getattr(
        server, "_preload_modules", None
    ) == ["__main__"]:
        ctx.set_forkserver_preload(["__main__", "gnn.data"])


def _draw_base_seed(generator: np.random.Generator | None) -> int:
    """The workers' base seed for one iteration, from `generator` or gnn's CPU generator.

    Taken from a child generator (Generator.spawn), which does not advance the parent's
    stream: shuffled orders are the same with and without workers, epoch after epoch.
    """
    rng = current_rng(generator)
    try:
        child = rng.spawn(1)[0]
    except (AttributeError, TypeError, ValueError):  # a generator without a SeedSequence
        child = rng
    return int(child.integers(0, 2**62))
