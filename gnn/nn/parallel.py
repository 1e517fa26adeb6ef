"""DistributedDataParallel: the same model on every rank, gradients averaged after each backward.

How the averaging is triggered: forward() passes the model's outputs through an identity op tied
to a marker op whose sequence number is below every other op's. The backward engine runs ops
newest first, so the marker runs last, after every parameter's gradient is complete, and there
the gradients are averaged over the ranks. Code that calls backward() without going through the
wrapper's forward (or on a loss that does not use its outputs) calls sync_gradients() itself.
"""

from __future__ import annotations

import contextlib
import itertools
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from gnn import config, creation
from gnn import distributed as dist
from gnn.autograd import Function
from gnn.dtypes import is_floating
from gnn.nn.batchnorm import _BatchNorm
from gnn.nn.module import Module
from gnn.tensor import Tensor

__all__ = ["DistributedDataParallel", "SyncBatchNorm"]

# Below every number gnn.autograd hands out (those count up from 0), and unique per marker, so
# the heap of the backward engine never compares two markers' Functions.
_marker_sequence = itertools.count(-1, -1)


class _SyncMarker(Function):
    """Identity on a scalar token; its backward, the last op of the pass, averages the grads."""

    def __init__(self, owner: Any = None) -> None:
        self.owner = owner

    def forward(self, token: Any) -> Any:
        return token

    def backward(self, gy: Any) -> Any:
        owner = self.owner()
        if owner is not None:
            owner.sync_gradients()
        return None  # the token is a throwaway leaf: it gets no gradient


class _Join(Function):
    """Identity on an output, with the marker's token as a second input so backward reaches it."""

    def forward(self, out: Any, token: Any) -> Any:
        self.token_dtype = token.dtype
        return out

    def backward(self, gy: Any) -> Any:
        return gy, self.be.xp.zeros((), dtype=self.token_dtype)


class _Bucket:
    """Parameters whose gradients travel together in one flat buffer."""

    def __init__(self, params: list[Tensor], indices: list[int], dtype: np.dtype) -> None:
        self.params = params
        self.indices = indices  # positions in the wrapper's parameter list
        self.dtype = dtype
        self.slices: list[tuple[int, int]] = []
        start = 0
        for p in params:
            self.slices.append((start, start + p.array.size))
            start += p.array.size
        self.size = start
        # After the gradients: one count per parameter of the ranks that had a .grad for it, so
        # the one all-reduce of the bucket also says which gradients exist anywhere.
        self.flat_size = start + len(params)
        self.flat: Any = None  # allocated on first use, on the parameters' device


class DistributedDataParallel(Module):
    """Wrap `module` for data-parallel training on the default process group.

    At wrap time every rank takes rank 0's parameters and buffers. After each backward through
    this wrapper, every gradient is replaced by its mean over the ranks (a parameter whose .grad
    is None on a rank counts as zeros there; it stays None only when it is None on every rank).
    Gradients travel in flat buckets of about bucket_cap_mb, in reverse parameter order (the
    order backward produces them), accumulated in float32 for float16/float32 parameters and in
    float64 for float64 ones.

    The mean is over ranks, as in PyTorch: with equal per-rank batches it equals the gradient of
    the whole batch; with unequal ones, weight each rank's loss by its share (Keras fit does).

    broadcast_buffers: before each training forward, every rank takes rank 0's buffers (BatchNorm
    running statistics), so they never drift apart; the batch statistics a BatchNorm normalises
    with in training are still each rank's own (see docs/distributed.md).
    """

    def __init__(
        self,
        module: Module,
        bucket_cap_mb: float = 25.0,
        broadcast_buffers: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(
                f"DistributedDataParallel: expected a gnn.nn.Module, got {type(module).__name__}"
            )
        if not isinstance(bucket_cap_mb, (int, float)) or not bucket_cap_mb > 0:
            raise ValueError(
                f"DistributedDataParallel: bucket_cap_mb must be > 0, got {bucket_cap_mb!r}"
            )
        if not dist.is_initialized():
            raise RuntimeError(
                "DistributedDataParallel: call gnn.distributed.init_process_group() first "
                "(a script run without a launcher then is a group of one)"
            )
        self.module = module
        self.broadcast_buffers = bool(broadcast_buffers)
        self.bucket_cap_mb = float(bucket_cap_mb)
        self._require_sync = True
        self._self_ref = weakref.ref(self)
        params = [p for p in module.parameters() if p.requires_grad]
        devices = {str(p.device) for p in params}
        if len(devices) > 1:
            raise ValueError(
                "DistributedDataParallel: the module's parameters are on several devices "
                f"({sorted(devices)}); put the whole model on one device per rank"
            )
        self._params = params
        self._buckets = self._make_buckets(params, int(self.bucket_cap_mb * 2**20))
        self._broadcast_state()

    # ---- setup ---------------------------------------------------------------------------------

    @staticmethod
    def _make_buckets(params: Sequence[Tensor], cap: int) -> list[_Bucket]:
        """Reverse parameter order; a new bucket when the dtype changes or the cap is reached."""
        buckets: list[_Bucket] = []
        current: list[int] = []
        cur_dtype: np.dtype = np.dtype(np.float32)  # that of `current`'s parameters, once any
        cur_bytes = 0
        for i in reversed(range(len(params))):
            p = params[i]
            dtype = np.dtype(np.float64) if p.array.dtype == np.float64 else np.dtype(np.float32)
            nbytes = p.array.size * dtype.itemsize
            if current and (dtype != cur_dtype or cur_bytes + nbytes > cap):
                buckets.append(_Bucket([params[j] for j in current], current, cur_dtype))
                current, cur_bytes = [], 0
            current.append(i)
            cur_dtype = dtype
            cur_bytes += nbytes
        if current:
            buckets.append(_Bucket([params[j] for j in current], current, cur_dtype))
        return buckets

    def _broadcast_state(self) -> None:
        """Every rank takes rank 0's parameters and buffers."""
        if dist.get_world_size() == 1:
            return
        for p in self.module.parameters():
            dist.broadcast_array(p.array, 0)
        self._broadcast_buffers()

    def _broadcast_buffers(self) -> None:
        if dist.get_world_size() == 1:
            return
        for b in self.module.buffers():
            dist.broadcast_array(b.array, 0)

    def broadcast_buffers_now(self) -> None:
        """Every rank takes rank 0's buffers now (e.g. before evaluating or saving)."""
        self._broadcast_buffers()

    # ---- forward and the gradient hook ---------------------------------------------------------

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.training and self.broadcast_buffers:
            self._broadcast_buffers()
        out = self.module(*args, **kwargs)
        if not (self._require_sync and config.is_grad_enabled()):
            return out
        token: Tensor | None = None

        def join(t: Tensor) -> Tensor:
            nonlocal token
            if token is None:
                leaf = creation.zeros((), dtype=np.float32, device=t.device, requires_grad=True)
                token = _SyncMarker.apply(leaf, owner=self._self_ref)
                # grad mode is on (checked above) and leaf requires grad: apply recorded a creator
                assert token._creator is not None
                token._creator.seq = next(_marker_sequence)
            return _Join.apply(t, token)

        return _map_tensors(out, join)

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Backward passes of forwards run inside only accumulate local gradients; the first
        backward after it averages everything accumulated (gradient accumulation)."""
        previous = self._require_sync
        self._require_sync = False
        try:
            yield
        finally:
            self._require_sync = previous

    def sync_gradients(self) -> None:
        """Replace every parameter's .grad by its mean over the ranks (collective: all call it)."""
        size = dist.get_world_size()
        if size == 1:
            return
        scale = 1.0 / size
        for bucket in self._buckets:
            self._reduce_bucket(bucket, scale)

    def _reduce_bucket(self, bucket: _Bucket, scale: float) -> None:
        # Raw arrays through the public backend: copying gradients into one flat buffer and
        # scaling them back in place is the point here (no graph, no temporaries per tensor).
        be = bucket.params[0].backend
        if bucket.flat is None:
            bucket.flat = be.xp.empty(bucket.flat_size, dtype=bucket.dtype)
        flat = bucket.flat
        for p, (lo, hi) in zip(bucket.params, bucket.slices):
            if p.grad is None:
                flat[lo:hi] = 0  # a missing gradient counts as zeros in the mean
            else:
                flat[lo:hi] = p.grad.array.reshape(-1)
        have = np.array([p.grad is not None for p in bucket.params], dtype=bucket.dtype)
        flat[bucket.size :] = be.xp.asarray(have)  # (CuPy takes arrays, not lists, here)
        dist.all_reduce_array(flat, "sum")
        present = (flat[bucket.size :] > 0).tolist()  # one small device-to-host copy per bucket
        xp = be.xp
        for p, (lo, hi), anywhere in zip(bucket.params, bucket.slices, present):
            if not anywhere:  # no rank has one: it stays None, as in one process
                continue
            total = flat[lo:hi].reshape(p.array.shape)
            if p.grad is None:
                p.grad = Tensor.wrap((total * scale).astype(p.array.dtype, copy=False), be)
            else:  # scale and write back in one pass (the sums are in the bucket's dtype)
                xp.multiply(total, scale, out=p.grad.array, casting="same_kind")

    def extra_repr(self) -> str:
        return (
            f"world_size={dist.get_world_size()}, buckets={len(self._buckets)}, "
            f"bucket_cap_mb={self.bucket_cap_mb:g}"
        )


def _map_tensors(out: Any, fn: Any) -> Any:
    """Apply fn to every Tensor in out that requires grad (through tuples, lists and dicts)."""
    if isinstance(out, Tensor):
        return fn(out) if out.requires_grad and is_floating(out.dtype) else out
    if isinstance(out, tuple):
        items = [_map_tensors(o, fn) for o in out]
        return type(out)(*items) if hasattr(out, "_fields") else tuple(items)
    if isinstance(out, list):
        return [_map_tensors(o, fn) for o in out]
    if isinstance(out, dict):
        return {k: _map_tensors(v, fn) for k, v in out.items()}
    return out


# ---- SyncBatchNorm -------------------------------------------------------------------------------


class _SyncBatchNormFn(Function):
    """Batch normalisation over the batches of all ranks together (training mode).

    Forward: two all-reduces (the per-channel sums and counts, then the sums of squared
    deviations) give the statistics of the whole global batch. Backward: one all-reduce of the
    per-channel sums of gy and gy * xhat, so each rank's input gradient is that of the sum of all
    ranks' losses; the weight and bias gradients stay local (DistributedDataParallel averages
    them). Statistics are accumulated in float64.
    """

    def __init__(self, eps: float, stats: dict) -> None:
        self.eps = eps
        self.stats = stats  # the caller's: receives the batch mean and unbiased variance

    def forward(self, x: Any, w: Any, b: Any) -> Any:
        xp = self.be.xp
        c = x.shape[1]
        axes = (0, *range(2, x.ndim))
        shape = (1, c) + (1,) * (x.ndim - 2)
        first = xp.empty(c + 1, dtype=np.float64)
        first[:c] = x.sum(axis=axes, dtype=np.float64)
        first[c] = x.size // c
        dist.all_reduce_array(first, "sum")
        n = float(first[c])
        if n <= 1:
            raise ValueError(
                "SyncBatchNorm: expected more than 1 value per channel over all ranks when "
                f"training, got {int(n)}"
            )
        mean = first[:c] / n
        xmu = x - mean.astype(x.dtype).reshape(shape)
        sq = (xmu * xmu).sum(axis=axes, dtype=np.float64)
        dist.all_reduce_array(sq, "sum")
        var = sq / n
        invstd = 1.0 / xp.sqrt(var + self.eps)
        xhat = xmu * invstd.astype(x.dtype).reshape(shape)
        self.xhat, self.invstd, self.w, self.n = xhat, invstd, w, n
        self.axes, self.shape = axes, shape
        self.stats["mean"], self.stats["var"] = mean, var * (n / (n - 1))
        return xhat * w.reshape(shape) + b.reshape(shape)

    def backward(self, gy: Any) -> Any:
        xp = self.be.xp
        xhat, axes, shape, c = self.xhat, self.axes, self.shape, self.xhat.shape[1]
        local = xp.empty(2 * c, dtype=np.float64)
        local[:c] = gy.sum(axis=axes, dtype=np.float64)
        local[c:] = (gy * xhat).sum(axis=axes, dtype=np.float64)
        gb = local[:c].astype(gy.dtype)
        gw = local[c:].astype(gy.dtype)
        dist.all_reduce_array(local, "sum")
        mean_dy = (local[:c] / self.n).astype(gy.dtype).reshape(shape)
        mean_dy_xhat = (local[c:] / self.n).astype(gy.dtype).reshape(shape)
        scale = (self.invstd.astype(gy.dtype) * self.w).reshape(shape)
        gx = (gy - mean_dy - xhat * mean_dy_xhat) * scale
        return gx, gw, gb


class SyncBatchNorm(_BatchNorm):
    """BatchNorm whose training statistics cover the batches of all ranks together.

    Accepts (N, C, ...) inputs. With equal per-rank batches, a model with SyncBatchNorm under
    DistributedDataParallel gets the gradients of one process on the whole batch. In evaluation,
    and in a group of one, it is a plain BatchNorm. Every rank must call forward the same number
    of times (each training forward is collective). convert_sync_batchnorm(model) swaps the
    BatchNorm1d/2d layers of a model for it.
    """

    dims = tuple(range(2, 9))
    shapes = "(N, C, ...)"

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        if x.ndim < 2 or x.shape[1] != self.num_features:
            raise ValueError(
                f"SyncBatchNorm({self.num_features}): expected (N, {self.num_features}, ...) "
                f"input, got shape {x.shape}"
            )
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats:
            self.num_batches_tracked.array += 1
            if self.momentum is None:  # cumulative moving average
                momentum = 1.0 / float(self.num_batches_tracked.array)
        w: Tensor
        b: Tensor
        if self.affine:
            w, b = self.weight, self.bias
        else:
            w = creation.ones(self.num_features, dtype=x.dtype, device=x.device)
            b = creation.zeros(self.num_features, dtype=x.dtype, device=x.device)
        stats: dict[str, Any] = {}
        y = _SyncBatchNormFn.apply(x, w, b, eps=self.eps, stats=stats)
        if self.track_running_stats:
            for buf, value in (
                (self.running_mean, stats["mean"]),
                (self.running_var, stats["var"]),
            ):
                buf.array *= 1.0 - momentum
                buf.array += (momentum * value).astype(buf.array.dtype)
        return y

    @classmethod
    def convert_sync_batchnorm(cls, module: Module) -> Module:
        """module with every BatchNorm1d/2d replaced by a SyncBatchNorm holding the same
        parameters and buffers (module itself is changed, and returned)."""
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
            return cls._from(module)
        for name, child in list(module._modules.items()):
            if child is not None:
                new = cls.convert_sync_batchnorm(child)
                if new is not child:
                    setattr(module, name, new)
        return module

    @classmethod
    def _from(cls, bn: _BatchNorm) -> SyncBatchNorm:
        sync = cls.__new__(cls)
        Module.__init__(sync)
        sync.num_features, sync.eps, sync.momentum = bn.num_features, bn.eps, bn.momentum
        sync.affine, sync.track_running_stats = bn.affine, bn.track_running_stats
        for name, p in bn._parameters.items():
            sync.register_parameter(name, p)
        for name, t in bn._buffers.items():
            sync.register_buffer(name, t)
        sync.train(bn.training)
        return sync
