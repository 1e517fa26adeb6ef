"""GraphedStep: a training step captured once as a CUDA graph, then replayed as one launch.

The first `warmup` calls run the step eagerly on a side stream (PyTorch's recipe: lazily made
buffers, kernel modules and cached constants exist before capture); the next call captures it and
replays the capture; every later call only copies its batch into the static input buffers and
replays. A batch of other shapes or dtypes than the first (the last, smaller batch of an epoch)
runs the step eagerly instead, outside the graph. Each call is one training step, so a GraphedStep
trains exactly as calling `step` would. The rules of capture (static shapes, no host reads in the
step, no host numbers that change from step to step) are in docs/cuda-graphs.md. A change of a
hyperparameter (a learning rate schedule) of an optimizer the captured step runs makes a new
capture, since replays keep the captured values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import gnn.cuda
from gnn.optim.optimizer import step_watchers
from gnn.tensor import Tensor


class GraphedStep:
    """Calls `step(*batch) -> loss` through a CUDA graph: warm-up, one capture, then replays."""

    def __init__(self, step: Callable[..., Tensor], warmup: int = 3, optimizer: Any = None) -> None:
        """optimizer: an optimizer to watch besides those the captured step runs, which are
        watched anyway: a change of their hyperparameters (a learning rate schedule) makes a new
        capture, since replays keep the captured values."""
        if warmup < 1:
            raise ValueError(f"GraphedStep: warmup must be at least 1 eager step, got {warmup}")
        self.step = step
        self.warmup = warmup
        self.calls = 0  # steps of the captured shapes (warm-up, capture, replays)
        self.eager_steps = 0  # steps of other shapes, run without the graph
        self.graph: gnn.cuda.CUDAGraph | None = None
        self.static_inputs: list[Tensor] = []
        self.static_loss: Tensor | None = None
        self.optimizer = optimizer
        self._stepped: list = []  # the optimizers the last warm-up or captured step ran
        self._captured_with: list = []  # the watched optimizers' hyperparameters at capture
        self._side: gnn.cuda.Stream | None = None

    def __call__(self, *batch: Tensor) -> Tensor:
        """One training step on `batch`; returns the loss (after capture: the same static tensor,
        refilled by each replay)."""
        if not batch:
            raise ValueError("GraphedStep: call it with the batch tensors the step takes")
        if not self.static_inputs:
            self.static_inputs = [self._static_like(x) for x in batch]
        if not self._fits(batch):
            self.eager_steps += 1
            device = self.static_inputs[0].device
            return self.step(*(x if x.device == device else x.to(device) for x in batch))
        for static, x in zip(self.static_inputs, batch):
            static.copy_(x)
        if self.graph is not None and self._hyperparameters() != self._captured_with:
            self._follow_hyperparameters()
        self.calls += 1
        if self.graph is not None:
            self.graph.replay()
            assert self.static_loss is not None
            return self.static_loss
        if self._side is None:
            self._side = gnn.cuda.Stream()
        if self.calls <= self.warmup:
            return self._warm_up(self._side)
        return self._capture(self._side)

    def _warm_up(self, side: gnn.cuda.Stream) -> Tensor:
        """One eager step on the side stream (PyTorch's recipe for the steps before capture)."""
        before = gnn.cuda.current_stream()
        side.wait_stream(before)
        with side, self._watching():
            loss = self.step(*self.static_inputs)
        before.wait_stream(side)
        return loss

    def _capture(self, side: gnn.cuda.Stream) -> Tensor:
        """Capture one step on the side stream, then replay it: this call's step."""
        graph = gnn.cuda.CUDAGraph()
        for opt in self._watched():  # a rate new since the warm-up: written now, not captured
            opt.lr_to_device()
        try:
            with self._watching(), gnn.cuda.graph(graph, stream=side):
                loss = self.step(*self.static_inputs)
        except RuntimeError as exc:
            if "StreamCapture" not in str(exc):
                raise
            self.calls -= 1  # nothing was trained: this call's step did not happen
            raise RuntimeError(
                f"GraphedStep: the step cannot be captured as a CUDA graph ({exc}). Inside the "
                "step nothing may read the GPU from the host (.item(), .numpy(), print, "
                "GradScaler) or copy host data over; see docs/cuda-graphs.md"
            ) from exc
        self._captured_with = self._hyperparameters()
        if not isinstance(loss, Tensor):
            raise TypeError(f"GraphedStep: the step must return the loss Tensor, got {type(loss)}")
        self.graph, self.static_loss = graph, loss
        graph.replay()  # the capture ran nothing: this call's step happens here
        return loss

    def reset(self, warmup: int = 1) -> None:
        """Drop the graph: the next `warmup` calls run eagerly, the one after captures anew.

        Call it after changing what the captured step baked in, such as the learning rate
        (a scheduler): the replays of the old graph would go on with the old value.
        """
        if warmup < 1:
            raise ValueError(f"GraphedStep.reset: warmup must be at least 1, got {warmup}")
        if self.graph is not None:
            self.graph.reset()
        self.graph, self.static_loss = None, None
        self.calls, self.warmup = 0, warmup

    def _follow_hyperparameters(self) -> None:
        """A watched optimizer's numbers changed since the capture: a new lr alone is written to
        the device memory the captured kernels read it from, where every update reads it there
        (Optimizer.lr_to_device); anything else makes a new capture (the graph holds the old)."""
        now, keep = self._hyperparameters(), self._hyperparameters(("lr",))
        if keep == self._hyperparameters(("lr",), self._captured_with) and all(
            opt.lr_to_device() for opt in self._watched()
        ):
            self._captured_with = now
        else:
            self.reset()

    @contextmanager
    def _watching(self) -> Iterator[None]:
        """Note the optimizers the step runs (each Optimizer.step appends itself to a list in
        gnn.optim.optimizer.step_watchers)."""
        stepped: list = []
        step_watchers.append(stepped)
        try:
            yield
        finally:
            step_watchers.remove(stepped)
            self._stepped = list({id(opt): opt for opt in stepped}.values())

    def _watched(self) -> list:
        return self._stepped + ([] if self.optimizer is None else [self.optimizer])

    def _hyperparameters(self, skip: tuple = (), groups: list | None = None) -> list:
        """The watched optimizers' numbers per parameter group (lr, momentum, betas, ...), or
        those of `groups` (a list this returned), without the keys in `skip`."""
        if groups is None:
            groups = [
                sorted((k, v) for k, v in g.items() if isinstance(v, (int, float, tuple)))
                for opt in self._watched()
                for g in opt.param_groups
            ]
        return [[(k, v) for k, v in g if k not in skip] for g in groups]

    @staticmethod
    def _static_like(x: Tensor) -> Tensor:
        """A buffer on the GPU that the captured step reads its input from, every replay."""
        if not isinstance(x, Tensor):
            raise TypeError(f"GraphedStep: batch items must be Tensors, got {type(x).__name__}")
        device = x.device if x.device.type == "cuda" else f"cuda:{gnn.cuda.current_device()}"
        return gnn.zeros(x.shape, dtype=x.dtype, device=device)

    def _fits(self, batch: tuple[Tensor, ...]) -> bool:
        """Whether the batch has the static inputs' shapes and dtypes (a graph replays those)."""
        if len(batch) != len(self.static_inputs):
            raise ValueError(
                f"GraphedStep: {len(batch)} batch tensors, the step was first called with "
                f"{len(self.static_inputs)}"
            )
        for x in batch:
            if not isinstance(x, Tensor):
                raise TypeError(f"GraphedStep: batch items must be Tensors, got {type(x).__name__}")
        return all(
            tuple(s.shape) == tuple(x.shape) and s.dtype == x.dtype
            for s, x in zip(self.static_inputs, batch)
        )
