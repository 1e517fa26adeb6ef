"""Module: the base class of layers and models (parameters, buffers, sub-modules, state dicts)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

from gnn.dtypes import is_floating, parse_dtype
from gnn.nn.parameter import Parameter
from gnn.nn.state_dict import load_into, state_tensors
from gnn.tensor import Tensor, to_arguments


class Module:
    """Base class: assign Parameters, buffers and Modules as attributes; define forward()."""

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # ---- registration --------------------------------------------------------------------------

    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        if "_parameters" not in d:
            raise AttributeError(
                f"cannot assign {name!r} before Module.__init__() is called "
                f"(call super().__init__() first in {type(self).__name__}.__init__)"
            )
        if isinstance(value, Parameter):
            self._put("_parameters", name, value)
        elif isinstance(value, Module):
            self._put("_modules", name, value)
        elif name in d["_buffers"]:  # persistent or not, as the buffer was
            d["_buffers"][name] = value
            d[name] = value  # the plain-attribute copy (see _put)
        elif name in d["_parameters"]:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} to parameter {name!r} "
                    "(wrap it in nn.Parameter, or assign None)"
                )
            self._put("_parameters", name, None)
        elif name in d["_modules"] and value is None:
            self._put("_modules", name, None)
        else:
            object.__setattr__(self, name, value)

    def _put(self, store: str, name: str, value: Any) -> None:
        """Enter value under name in one of the three stores, out of the other two."""
        d = self.__dict__
        for other in ("_parameters", "_buffers", "_modules"):
            if other != store:
                d[other].pop(name, None)
        d[store][name] = value  # where it was if it was there: the state dict's order stays
        d["_non_persistent"].discard(name)  # register_buffer(persistent=False) adds it back
        # Also kept as a plain attribute, so `self.weight` is found without a failed lookup and
        # __getattr__ (which cost 15x a plain read, and layers read their weights every call).
        # Everything that changes the three stores by name keeps this copy in step.
        d[name] = value

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails: parameters, buffers and submodules live here.
        d = self.__dict__
        if "_modules" in d:  # the last of the three that __init__ makes
            for store in (d["_parameters"], d["_buffers"], d["_modules"]):
                if name in store:
                    return store[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            if name in d[store]:
                del d[store][name]
                d.pop(name, None)  # the plain-attribute copy that __setattr__ keeps
                return
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Add a parameter (None registers an absent one, like a layer built with bias=False)."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {type(param).__name__} is not a Parameter")
        self._put("_parameters", name, param)

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Add state that is saved in state_dict() (if persistent) but not trained."""
        self._put("_buffers", name, tensor)
        if not persistent:
            self._non_persistent.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {type(module).__name__} is not a Module")
        self._modules[name] = module
        self.__dict__.pop(name, None)

    # ---- traversal -----------------------------------------------------------------------------

    def named_modules(
        self, prefix: str = "", remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Module]]:
        """(dotted name, module) for self and every sub-module, parents before children; a
        module reachable under two names appears once, or under both with remove_duplicate=False
        (as state_dict lists it, like PyTorch's)."""
        seen: set[int] = set()
        stack = [(prefix, self)]
        while stack:
            name, mod = stack.pop()
            if remove_duplicate and id(mod) in seen:
                continue
            seen.add(id(mod))
            yield name, mod
            for k, m in reversed(mod._modules.items()):  # popped in order, the first child next
                if m is not None:
                    stack.append((f"{name}.{k}" if name else k, m))

    def modules(self) -> Iterator[Module]:
        return (m for _, m in self.named_modules())

    def named_children(self) -> Iterator[tuple[str, Module]]:
        return ((name, m) for name, m in self._modules.items() if m is not None)

    def children(self) -> Iterator[Module]:
        return (m for _, m in self.named_children())

    def _named_members(self, store: str, prefix: str, recurse: bool) -> Iterator[tuple[str, Any]]:
        """(dotted name, value) of the non-None entries of each module's `store`; a value
        shared by two modules appears once."""
        seen: set[int] = set()
        mods = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mod_name, mod in mods:
            for name, v in getattr(mod, store).items():
                if v is not None and id(v) not in seen:
                    seen.add(id(v))
                    yield (f"{mod_name}.{name}" if mod_name else name), v

    def named_parameters(
        self, prefix: str = "", recurse: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        """(name, parameter) pairs with PyTorch's dotted names; shared parameters appear once."""
        return self._named_members("_parameters", prefix, recurse)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        return (p for _, p in self.named_parameters(recurse=recurse))

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        """(name, buffer) pairs with PyTorch's dotted names; shared buffers appear once."""
        return self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        return (b for _, b in self.named_buffers(recurse=recurse))

    def apply(self, fn: Callable[[Module], None]) -> Module:
        """Call fn on every sub-module (children first) and on self."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # ---- modes and devices ---------------------------------------------------------------------

    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> Module:
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.array[...] = 0

    def to(self, device: Any = None, dtype: Any = None) -> Module:
        """Move parameters and buffers in place (the Parameter objects stay the same, so an
        optimizer built before the move keeps working; a tensor already on that device with that
        dtype keeps its array; integer buffers keep their dtype); returns self.

        `m.to("cuda")`, `m.to(gnn.float64)`, `m.to("float64")`, `m.to("cpu", "float32")` and
        `m.to(tensor)` (its device and dtype) work, as for Tensor.to.
        """
        device, dtype = to_arguments(device, dtype, "Module.to")
        cast = dtype is not None and is_floating(parse_dtype(dtype))  # integer buffers stay
        for t in [*self.parameters(), *self.buffers()]:
            for u in (t, t.grad):  # its .grad moves too
                if u is not None:  # .data takes the moved storage: the same Tensor objects
                    u.data = u.detach().to(device, dtype if cast and is_floating(u.dtype) else None)
        return self

    def cpu(self) -> Module:
        return self.to("cpu")

    def cuda(self, index: int = 0) -> Module:
        return self.to(f"cuda:{index}")

    def float(self) -> Module:
        return self.to(dtype="float32")

    def double(self) -> Module:
        return self.to(dtype="float64")

    def half(self) -> Module:
        return self.to(dtype="float16")

    def bfloat16(self) -> Module:
        return self.to(dtype="bfloat16")

    # ---- state dicts ---------------------------------------------------------------------------

    def state_dict(self, prefix: str = "", keep_vars: bool = False) -> OrderedDict[str, Tensor]:
        """Parameters and persistent buffers by dotted name, each key after `prefix`; detached
        views that share memory, or the Parameters themselves with keep_vars=True."""
        return OrderedDict(
            (prefix + k, t if keep_vars else t.detach()) for k, t in state_tensors(self)
        )

    def load_state_dict(self, state_dict: dict, strict: bool = True) -> tuple[list[str], list[str]]:
        """Copy values in by name; returns (missing_keys, unexpected_keys).

        With strict=True, any missing or unexpected key, or any shape mismatch, raises one error
        that lists them all (shape mismatches raise with strict=False too, as in PyTorch). Values
        may be Tensors or numeric arrays from any device. All or nothing: every key, shape and
        dtype is checked and every value converted before the first copy, so a failed load
        leaves the model unchanged (gnn/nn/state_dict.py).
        """
        return load_into(self, state_dict, strict)

    # ---- calling -------------------------------------------------------------------------------

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    # Forward hooks by handle, in registration order: {handle: ("pre" or "post", hook)}, made on
    # the first registration and dropped with the last, so a module without hooks (nearly all,
    # and __call__ is hot) finds this class default None and calls forward at once.
    _hooks: dict[RemovableHandle, tuple[str, Callable[..., Any]]] | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if args and not isinstance(args[0], Tensor) and type(self).__module__.startswith("gnn."):
            _check_layer_input(self, args[0])
        hooks = self._hooks
        if hooks is None:
            return self.forward(*args, **kwargs)
        for kind, hook in list(hooks.values()):
            if kind == "pre":
                result = hook(self, args)
                if result is not None:
                    args = result if isinstance(result, tuple) else (result,)
        output = self.forward(*args, **kwargs)
        for kind, hook in list(hooks.values()):
            if kind == "post":
                result = hook(self, args, output)
                if result is not None:
                    output = result
        return output

    def register_forward_pre_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        """Call hook(module, args) before each forward; a non-None result replaces the args (a
        tuple, or one value for a single argument). Returns a handle whose .remove() undoes it."""
        return self._add_hook("pre", hook)

    def register_forward_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        """Call hook(module, args, output) after each forward; a non-None result replaces the
        output. Returns a handle whose .remove() undoes it."""
        return self._add_hook("post", hook)

    def _add_hook(self, kind: str, hook: Callable[..., Any]) -> RemovableHandle:
        if not callable(hook):
            raise TypeError(f"a forward hook must be callable, got {type(hook).__name__}")
        handle = RemovableHandle(self)
        self.__dict__.setdefault("_hooks", {})[handle] = (kind, hook)
        return handle

    # ---- printing ------------------------------------------------------------------------------

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"({name}): " + repr(m).replace("\n", "\n  ") for name, m in self._modules.items()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"

    def __dir__(self) -> list[str]:
        # parameters and buffers are plain attributes too (see _put); a container's children not
        return sorted(set(super().__dir__()) | set(self._modules))


class RemovableHandle:
    """What register_forward_hook returns: .remove() takes the hook off (again: no-op).

    A deep copy of the module copies its hooks with new handles, so the copy keeps them."""

    def __init__(self, module: Module) -> None:
        self.module = module

    def remove(self) -> None:
        hooks = self.module.__dict__.get("_hooks", {})
        hooks.pop(self, None)
        if not hooks:  # the last one: back to the hook-free path
            self.module.__dict__.pop("_hooks", None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def _check_layer_input(module: Module, x: Any) -> None:
    """A gnn layer given a NumPy/CuPy array or a list: a TypeError that says what to do.

    Only gnn's own layers are checked (a user's Module may take anything), and only their first
    argument, the input: otherwise the layer would fail deep inside with an AttributeError.
    """
    if isinstance(x, (list, tuple)) and x and not any(isinstance(v, Tensor) for v in x):
        what = f"a Python {type(x).__name__}"
    elif hasattr(x, "__array__") or hasattr(x, "__cuda_array_interface__"):
        what = f"a {type(x).__module__.split('.')[0]}.{type(x).__name__}"
    else:
        return
    raise TypeError(
        f"{type(module).__name__}: the input is {what}, not a gnn Tensor; convert it first with "
        f"gnn.tensor(x) (on the model's device: gnn.tensor(x, device=...)); Keras-style "
        "model.fit/evaluate/predict take arrays directly"
    )


__all__ = ["Module", "RemovableHandle"]
