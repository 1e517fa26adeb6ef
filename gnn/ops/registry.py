"""The op registry: every op is registered once, next to its definition, with all its spellings.

An op's spellings are its function in gnn.functional (its name and aliases), its Tensor methods,
operators and in-place forms, and, where PyTorch has torch.<name>, gnn.<name>. gnn.functional
and gnn's op names are read from this table (`functions`, `top_level`). Tensor's op methods are
set on the class here, by `register`, and nowhere else: tensor.py holds only what a Tensor is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from gnn.tensor import Tensor, shape_args

Fn = TypeVar("Fn", bound=Callable[..., Any])


@dataclass(frozen=True)
class Op:
    """One registered op: its function and every name it goes by."""

    fn: Callable[..., Any]
    names: tuple[str, ...]  # its name (OPS's key), then its aliases: gnn.functional's names for fn
    tensor: dict[str, Any]  # Tensor attribute -> its value
    top: bool  # gnn.<name> and gnn.<alias>


OPS: dict[str, Op] = {}


def register(
    *,
    method: bool = False,
    operators: tuple[str, ...] = (),
    reflected: str | None = None,
    tensor: dict[str, Any] | None = None,
    aliases: tuple[str, ...] = (),
    top: bool = False,
    name: str | None = None,
    doc: str | None = None,
    sizes: bool = False,
) -> Callable[[Fn], Fn]:
    """Register the decorated function as an op.

    method: the function itself is Tensor.<name> (and Tensor.<alias>); a PyTorch method whose
    arguments differ is one of `tensor`'s attributes instead (`t.where(cond, y)`). operators:
    the Tensor operators that are the function itself (`__add__`); reflected: the one that swaps
    its two operands (`__radd__`). tensor: any other Tensor attributes (in-place forms,
    properties). top: also gnn.<name>. name: when it is not the function's own. doc: the
    docstring of a function made by a factory, which then takes `name` as its own too. sizes: the
    method takes its sizes either way, `t.reshape(2, 3)` or `t.reshape((2, 3))`.
    """

    def decorate(fn: Fn) -> Fn:
        op_name = name or fn.__name__
        op = Op(fn, (op_name, *aliases), dict(tensor or {}), top)
        if doc is not None:
            _named(fn, op_name)
            fn.__doc__ = doc
        if method:  # with sizes, `t.reshape(2, 3)` as well as `t.reshape((2, 3))`
            impl = _named(lambda x, *sizes: fn(x, shape_args(sizes)), op_name) if sizes else fn
            op.tensor.update({spelling: impl for spelling in op.names})
        op.tensor.update({operator: fn for operator in operators})
        if reflected:  # `2 - t` calls t.__rsub__(2), which is sub(2, t)
            op.tensor[reflected] = _named(lambda self, other: fn(other, self), reflected)
        clash = [n for n in op.names if any(n in o.names for o in OPS.values())]
        # Tensor's own attributes (tensor.py) and those of the ops registered so far are taken
        clash += [a for a in op.tensor if a in vars(Tensor)]
        if clash:
            raise ValueError(f"register {op_name}: {clash} already taken")
        OPS[op_name] = op
        for attribute, value in op.tensor.items():
            setattr(Tensor, attribute, value)
        return fn

    return decorate


def _named(fn: Fn, name: str) -> Fn:
    """fn, named `name` (a function made here or by an op module's factory)."""
    fn.__name__ = fn.__qualname__ = name
    return fn


def functions() -> dict[str, Callable[..., Any]]:
    """gnn.functional's names: every op under its name and aliases."""
    return {n: op.fn for op in OPS.values() for n in op.names}


def top_level() -> dict[str, Callable[..., Any]]:
    """gnn's op names (torch.<name>)."""
    return {n: op.fn for op in OPS.values() if op.top for n in op.names}
