"""Define-by-run autograd: the Function base class and the backward engine.

A Function computes `forward(*arrays)` and `backward(gy)` on raw backend arrays. `apply` runs
forward and, when grad mode is on and an input requires grad, records the Function as the output's
creator. `backward(tensor)` walks that graph once, newest Function first, sums gradients of
broadcast operands back to their shapes, accumulates into leaves' `.grad`, and frees the graph.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import weakref
from typing import TYPE_CHECKING, Any

import numpy as np

from gnn import config

if TYPE_CHECKING:
    from gnn.backend import Backend
    from gnn.tensor import Tensor

# Every recorded Function takes the next number. An op's inputs were made before it, so going
# through Functions from the highest number down visits each after everything that uses it.
_sequence = itertools.count()

# Called as on_apply(fn, inputs, result) after every Function runs, in any grad mode, while set.
# gnn.onnx sets it for the length of one traced forward pass: inference runs under no_grad(),
# which records no graph, yet an exporter must see every op with its inputs and settings.
on_apply: Any = None

# Gradient homes (gnn/optim/_flat.py, through set_home): id(parameter) -> [home, ref, pref,
# array]. The home is a view into a flat gradient buffer of the optimizer; ref is a weak reference
# to the Tensor that last wrapped it as the parameter's .grad (or None); pref one to the
# parameter; array the parameter's array when the home was set (a new one voids the home). While
# any exist, backward tells each Function where the gradients of its leaf inputs would ideally go
# (Function.grad_out); an op that writes one there and returns that same array saves the
# optimizer's gather copy. A home whose earlier .grad Tensor someone still holds is not handed out
# (that Tensor must keep its values, as in PyTorch). Keyed by id: Tensors compare elementwise.
homes: dict[int, list] = {}


def set_home(p: Tensor, home: Any) -> None:
    """Make `home` (an array of p's shape and dtype) the place p's gradients go first, while p's
    array stays the one it is now (a move to another device or dtype makes a new one)."""
    key = id(p)  # forgotten when p dies: its id may be reused
    homes[key] = [home, None, weakref.ref(p, lambda _: homes.pop(key, None)), p.array]


def home_of(p: Tensor) -> list | None:
    """p's [home, ref, pref, array] entry, or None (also once p's array was replaced)."""
    entry = homes.get(id(p))
    return entry if entry is not None and entry[2]() is p and entry[3] is p.array else None


class Function:
    """One differentiable op.

    Subclasses set hyperparameters in __init__ and save what backward needs.
    """

    # inputs: the Tensor arguments (set only while the Function is in a graph); seq: its number.
    __slots__ = ("inputs", "needs_input_grad", "be", "seq", "__dict__")
    inputs: tuple[Tensor, ...]
    needs_input_grad: tuple[bool, ...]
    be: Backend  # the inputs' backend
    seq: int
    # Set by backward just before it calls backward(): per input, an array its gradient may be
    # written into (a leaf's gradient home, see `homes`), or None. See grad_home.
    grad_out: tuple | None = None

    def grad_home(self, i: int, dtype: Any) -> Any:
        """Where input i's gradient of `dtype` would ideally go, or None. An op that writes the
        whole gradient into it returns that same array for input i; ops that ignore it are fine."""
        home = None if self.grad_out is None else self.grad_out[i]
        return home if home is not None and home.dtype == dtype else None

    def forward(self, *xs: Any) -> Any:
        raise NotImplementedError

    def backward(self, gy: Any) -> Any:
        """Return one gradient per input (a tuple, or the array alone for one input).

        None in place of a gradient means that input gets none.
        """
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs: Tensor, **params: Any) -> Tensor:
        """Run the op on Tensors and record it in the graph when needed."""
        fn = cls(**params) if params else cls()
        be = inputs[0]._be
        fn.be = be
        if len(inputs) == 1:
            needs: tuple[bool, ...] = (inputs[0].requires_grad,)
            fn.needs_input_grad = needs  # before forward: some save less when a grad is not needed
            out = fn.forward(inputs[0].array)
        else:
            for t in inputs:
                if t._be is not be:
                    raise RuntimeError(
                        f"{cls.__name__.lower()}: inputs are on different devices "
                        f"({inputs[0].device} and {t.device}); move them with .to(device) first"
                    )
            needs = tuple([t.requires_grad for t in inputs])
            fn.needs_input_grad = needs
            out = fn.forward(*[t.array for t in inputs])
        recording = config._state.grad_enabled and True in needs
        plain = inputs[0]._plain  # Tensor, whatever subclass (Parameter) the input is
        result = plain.__new__(plain)
        result.array = out
        result._be = be
        result.grad = None
        result.requires_grad = recording
        result._creator = fn if recording else None
        if recording:
            fn.inputs = inputs
            fn.seq = next(_sequence)
        if on_apply is not None:
            on_apply(fn, inputs, result)
        return result


def _sum_to_shape(g: Any, shape: tuple) -> Any:
    """Sum a broadcast gradient (not of `shape`) back down to `shape` (the engine does this once,
    for every op)."""
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, n in enumerate(shape) if n == 1 and g.shape[i + lead] != 1
    )
    return g.sum(axis=axes).reshape(shape)  # the size-1 axes summed away come back


def _seed(root: Tensor, grad: Any) -> Any:
    """The gradient backward starts from: ones for a scalar, else a checked copy of `grad`."""
    data = root.array
    if grad is None:
        if data.size != 1:
            raise RuntimeError(
                f"backward: grad can be implied only for a scalar output, got shape "
                f"{tuple(data.shape)}; pass a gradient of that shape, "
                "e.g. y.backward(gnn.ones_like(y))"
            )
        return _ones(root._be, data.dtype, data.shape)
    # A copy: the seed may end up as a leaf's .grad, which later steps change in place.
    g0 = root._be.xp.array(grad.array if isinstance(grad, root._plain) else grad, dtype=data.dtype)
    if g0.shape != data.shape:
        raise RuntimeError(
            f"backward: gradient shape {tuple(g0.shape)} does not match the output shape "
            f"{tuple(data.shape)}"
        )
    return g0


@functools.cache  # one lookup per backward, not constant()'s key building and a reshape
def _ones(be: Backend, dtype: Any, shape: tuple) -> Any:
    """The seed of a scalar root: the backend's cached 1 of `dtype`, viewed in `shape` and shared,
    read-only where arrays can be (no fill launch each step on a GPU). No backward writes its
    incoming gradient in place, and _hand_on copies the seed, not keeps it."""
    return be.constant((1,), dtype).reshape(shape)


def _is_seed(be: Backend, g: Any) -> bool:
    """Whether g (a one-element array on a device without read-only arrays) views the seed."""
    return g.data.ptr == be.constant((1,), g.dtype).data.ptr


def backward(root: Tensor, grad: Any = None, retain_graph: bool = False) -> None:
    """Accumulate d(root)/d(leaf) into every leaf that requires grad."""
    if not root.requires_grad:
        raise RuntimeError(
            "backward: this tensor does not require grad and has no graph "
            "(was it computed under no_grad(), or from tensors without requires_grad=True?)"
        )
    # Functions waiting to run, newest first, each with the gradient of its output summed so far.
    # A Function enters when its first gradient arrives; by the time it leaves, every Function
    # that used its output (all newer than it) has run and added to that gradient.
    heap: list[tuple[int, Function]] = []
    grads: dict[Function, Any] = {}
    # Arrays handed to two Functions at once, where arrays cannot be made read-only (CuPy): a
    # leaf that would keep one (or a view of it) as its .grad copies it instead (see _share).
    shared: list[Any] = []
    _hand_on(root, _seed(root, grad), grads, heap, shared)  # a leaf root keeps it as its .grad
    while heap:
        fn = heapq.heappop(heap)[1]
        gy = grads.pop(fn)
        try:
            inputs = fn.inputs
        except AttributeError:
            raise RuntimeError(
                "backward: the graph was already freed by an earlier backward(); "
                "call backward(retain_graph=True) the first time to go through it twice"
            ) from None
        if homes:
            fn.grad_out = _grad_out(inputs, fn.needs_input_grad)
        gxs = fn.backward(gy)
        if len(inputs) == 1:
            if isinstance(gxs, tuple):
                gxs = gxs[0]
            if gxs is not None:  # needed: a Function of one input is recorded only then
                _hand_on(inputs[0], gxs, grads, heap, shared)
        else:
            needs = fn.needs_input_grad
            # one array for two inputs (as add's backward returns)? Two and three inputs inline.
            n, g, h = len(gxs), gxs[0], gxs[1]
            if n == 2:
                repeats = g is h and g is not None
            elif n == 3:
                k = gxs[2]
                repeats = ((g is h or g is k) and g is not None) or (h is k and h is not None)
            else:
                ids = [id(g) for g in gxs if g is not None]
                repeats = len(set(ids)) < len(ids)
            if repeats:
                gxs = _share(inputs, needs, gxs, shared)
            for t, need, gx in zip(inputs, needs, gxs):
                if need and gx is not None:
                    _hand_on(t, gx, grads, heap, shared)
        if not retain_graph:
            del fn.inputs
            fn.__dict__.clear()  # drop saved arrays now, not when the graph is collected


def _grad_out(inputs: tuple, needs: tuple) -> tuple:
    """The gradient homes of a Function's inputs that may take a gradient now: leaves that need
    one, have a home, no gradient yet and no earlier .grad Tensor still held; each leaf once."""
    out: list = [None] * len(inputs)
    for i, t in enumerate(inputs):
        if not needs[i] or t._creator is not None or t.grad is not None:
            continue
        entry = home_of(t)
        if entry is None or (entry[1] is not None and entry[1]() is not None):
            continue
        if any(u is t for u in inputs[:i]):
            continue
        out[i] = entry[0]
    return tuple(out)


def _share(inputs: tuple, needs: tuple, gxs: Any, shared: list) -> list:
    """The gradients for a Function's inputs when one array is that of several of them (add's
    backward returns gy for both operands: every residual connection).

    No backward writes into its incoming gradient (docs/architecture.md), so Functions may share
    one array: they get it read-only (a view; on CuPy, which has no read-only arrays, it is
    noted in `shared`), so that a leaf it reaches later, through views that ops like reshape
    hand on, copies it. A leaf may not share it: _hand_on keeps its first gradient as its .grad
    and adds later ones into it in place, so leaves get copies (x + x too). Summed-down
    (broadcast) gradients are new arrays anyway.
    """
    if len(gxs) == 2 and needs[0] and needs[1]:  # the common case, x + f(x): written out for speed
        a, b = inputs
        g = gxs[0]
        if a._creator is not None and b._creator is not None:
            if a.array.shape == g.shape == b.array.shape:
                view = _read_only(g, shared)
                return [view, view]
    out = list(gxs)
    for g in {id(g): g for g in gxs if g is not None}.values():  # each array once
        # the inputs g would reach as it is (not summed down to a smaller shape: a new array)
        targets = [j for j, h in enumerate(gxs) if h is g and needs[j]]
        targets = [j for j in targets if inputs[j].array.shape == g.shape]
        if len(targets) < 2:
            continue
        view = _read_only(g, shared)
        for j in targets:
            out[j] = view if inputs[j]._creator is not None else g.copy()
    return out


def _read_only(g: Any, shared: list) -> Any:
    """A read-only view of a NumPy array g. A CuPy array (the fake CuPy's too: CuPy has no
    read-only arrays) is g itself, noted in `shared`; a NumPy scalar (0-d math returns one) is
    immutable already."""
    if isinstance(g, np.ndarray):
        view = g.view()
        view.flags.writeable = False
        return view
    if not isinstance(g, np.generic):
        shared.append(g)
    return g


def _aliases(g: Any, shared: list) -> bool:
    """Whether g lies in the memory of an array in `shared` (CuPy arrays)."""
    ptr = g.data.ptr
    return any(s.data.ptr <= ptr < s.data.ptr + s.nbytes for s in shared)


def _hand_on(t: Tensor, gx: Any, grads: dict, heap: list, shared: list) -> None:
    """Pass the gradient gx of input t on: to t's creator, or into t.grad for a leaf.

    A leaf's first gradient becomes its .grad as is when it is a fresh contiguous array owned by
    nobody else (else a copy); later ones are added in place, as PyTorch does.
    """
    shape = t.array.shape
    if gx.shape != shape:
        gx = _sum_to_shape(gx, shape)
    creator = t._creator
    if creator is not None:
        prev = grads.get(creator)
        if prev is None:
            grads[creator] = gx
            heapq.heappush(heap, (-creator.seq, creator))
        else:
            grads[creator] = prev + gx  # out of place: gx may also be held elsewhere
    elif t.grad is not None:
        t.grad.array += gx
    else:
        flags = gx.flags
        # CuPy's flags have no `writeable` (its broadcast views are not C-contiguous instead), and
        # only as a NumPy array is the shared seed read-only: a view of a CuPy one (the fake CuPy's
        # too) is found by its pointer, as are the arrays Functions share (see _share).
        if (
            gx.dtype != t.array.dtype
            or not flags.c_contiguous
            or getattr(flags, "writeable", True) is False
            or (gx.size == 1 and not isinstance(gx, np.ndarray) and _is_seed(t._be, gx))
            or (shared and _aliases(gx, shared))
        ):
            gx = t._be.xp.array(gx, dtype=t.array.dtype, order="C")  # e.g. a broadcast view
        t.grad = t._plain._make(gx, t._be)
        if homes:
            entry = home_of(t)
            if entry is not None and entry[0] is gx:
                entry[1] = weakref.ref(t.grad)
