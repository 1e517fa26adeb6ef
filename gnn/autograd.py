"""Define-by-run autograd: the Function base class and the backward engine.

A Function computes `forward(*arrays)` and `backward(gy)` on raw backend arrays. `apply` runs
forward and, when grad mode is on and an input requires grad, records the Function as the output's
creator. `backward(tensor)` walks that graph once in topological order, sums gradients of broadcast
operands back to their shapes, accumulates into leaves' `.grad`, and frees the graph.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gnn import config

if TYPE_CHECKING:
    from gnn.tensor import Tensor


class Function:
    """One differentiable op.

    Subclasses set hyperparameters in __init__ and save what backward needs.
    """

    # inputs: the Tensor arguments (set only while the Function is in a graph)
    __slots__ = ("inputs", "needs_input_grad", "be", "__dict__")

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
        first = inputs[0]
        be = first._be
        for t in inputs[1:]:
            if t._be is not be:
                raise RuntimeError(
                    f"{cls.__name__.lower()}: inputs are on different devices "
                    f"({first.device} and {t.device}); move them with .to(device) first"
                )
        fn.be = be
        needs = tuple(t.requires_grad for t in inputs)
        record = config._state.grad_enabled and any(needs)
        fn.needs_input_grad = needs
        out = fn.forward(*[t.data for t in inputs])
        result = type(first)._make(out, be, record)
        if record:
            fn.inputs = inputs
            result._creator = fn
        return result


def _sum_to_shape(xp: Any, g: Any, shape: tuple) -> Any:
    """Sum a broadcast gradient back down to `shape` (the engine does this once for every op)."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, n in enumerate(shape) if n == 1 and g.shape[i + lead] != 1
    )
    g = g.sum(axis=axes, keepdims=True) if axes else g
    if lead:
        g = g.reshape(g.shape[lead:])
    return g.reshape(shape)


def backward(root: Tensor, grad: Any = None, retain_graph: bool = False) -> None:
    """Accumulate d(root)/d(leaf) into every leaf that requires grad."""
    if not root.requires_grad:
        raise RuntimeError(
            "backward: this tensor does not require grad and has no graph "
            "(was it computed under no_grad(), or from tensors without requires_grad=True?)"
        )
    be = root._be
    xp = be.xp
    if grad is None:
        if root.data.size != 1:
            raise RuntimeError(
                f"backward: grad can be implied only for a scalar output, got shape "
                f"{tuple(root.shape)}; pass a gradient of that shape, "
                "e.g. y.backward(gnn.ones_like(y))"
            )
        g0 = xp.ones(root.data.shape, dtype=root.data.dtype)
    else:
        # A copy: the seed may end up as a leaf's .grad, which later steps change in place.
        g0 = xp.array(getattr(grad, "data", grad), dtype=root.data.dtype)
        if g0.shape != root.data.shape:
            raise RuntimeError(
                f"backward: gradient shape {tuple(g0.shape)} does not match the output shape "
                f"{tuple(root.shape)}"
            )

    if root._creator is None:  # a leaf: its gradient is the seed itself
        _accumulate_leaf(root, g0)
        return

    # Topological order of the Functions reachable from root (iterative DFS, no recursion limit).
    order: list[Function] = []
    visited: set[int] = set()
    stack: list[tuple[Function, bool]] = [(root._creator, False)]
    while stack:
        fn, done = stack.pop()
        if done:
            order.append(fn)
            continue
        if id(fn) in visited:
            continue
        visited.add(id(fn))
        stack.append((fn, True))
        if not hasattr(fn, "inputs"):
            raise RuntimeError(
                "backward: the graph was already freed by an earlier backward(); "
                "call backward(retain_graph=True) the first time to go through it twice"
            )
        for t in fn.inputs:
            creator = t._creator
            if creator is not None and id(creator) not in visited:
                stack.append((creator, False))

    grads: dict[int, Any] = {id(root._creator): g0}  # Function id -> gradient of its output
    for fn in reversed(order):
        gy = grads.pop(id(fn), None)
        if gy is None:
            continue
        gxs = fn.backward(gy)
        if not isinstance(gxs, tuple):
            gxs = (gxs,)
        handed_out: set[int] = set()
        for t, need, gx in zip(fn.inputs, fn.needs_input_grad, gxs):
            if not need or gx is None:
                continue
            gx = _sum_to_shape(xp, gx, t.data.shape)
            if id(gx) in handed_out:  # the same array for two inputs (as add's backward does)
                gx = gx.copy()
            handed_out.add(id(gx))
            creator = t._creator
            if creator is None:
                _accumulate_leaf(t, gx)
            else:
                key = id(creator)
                prev = grads.get(key)
                # Out of place: a backward may hand the same array to several inputs.
                grads[key] = gx if prev is None else prev + gx
        if not retain_graph:
            del fn.inputs
            fn.__dict__.clear()  # drop saved arrays now, not when the graph is collected


def _accumulate_leaf(t: Tensor, g: Any) -> None:
    """t.grad += g. The first gradient is stored as is when it is a fresh contiguous array (owned
    by nobody else); later ones are added in place, as PyTorch does."""
    if t.grad is None:
        # CuPy's flags have no `writeable` (its broadcast views are not C-contiguous instead).
        writeable = getattr(g.flags, "writeable", True)
        if g.dtype != t.data.dtype or not g.flags.c_contiguous or not writeable:
            g = t._be.xp.array(g, dtype=t.data.dtype, order="C")  # e.g. a broadcast view
        t.grad = type(t)._make(g, t._be, False)
    else:
        t.grad.data += g
