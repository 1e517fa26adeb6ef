"""Module: the base class of layers and models (parameters, buffers, sub-modules, state dicts)."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from gnn.backend import get_backend, parse_device
from gnn.nn.parameter import Parameter
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
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"cannot assign {name!r} before Module.__init__() is called "
                f"(call super().__init__() first in {type(self).__name__}.__init__)"
            )
        d = self.__dict__
        params, buffers, modules = d["_parameters"], d["_buffers"], d["_modules"]
        if isinstance(value, Parameter):
            buffers.pop(name, None)
            modules.pop(name, None)
            params[name] = value
        elif isinstance(value, Module):
            params.pop(name, None)
            buffers.pop(name, None)
            modules[name] = value
        elif name in buffers:
            buffers[name] = value
        elif name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} to parameter {name!r} "
                    "(wrap it in nn.Parameter, or assign None)"
                )
            params[name] = None
        elif name in modules and value is None:
            modules[name] = None
        else:
            object.__setattr__(self, name, value)
            return
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
        if param is None:
            self._parameters[name] = None
            self.__dict__[name] = None  # the plain-attribute copy, as __setattr__ keeps
        else:
            setattr(self, name, param)

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Add state that is saved in state_dict() (if persistent) but not trained."""
        self._buffers[name] = tensor
        self.__dict__[name] = tensor  # the plain-attribute copy, as __setattr__ keeps
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {type(module).__name__} is not a Module")
        self._modules[name] = module
        self.__dict__.pop(name, None)

    # ---- traversal -----------------------------------------------------------------------------

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        seen: set[int] = set()
        stack = [(prefix, self)]
        while stack:
            name, mod = stack.pop()
            if id(mod) in seen:
                continue
            seen.add(id(mod))
            yield name, mod
            children = [
                (f"{name}.{k}" if name else k, m) for k, m in mod._modules.items() if m is not None
            ]
            stack.extend(reversed(children))

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        for name, m in self._modules.items():
            if m is not None:
                yield name, m

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def named_parameters(
        self, prefix: str = "", recurse: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        """(name, parameter) pairs with PyTorch's dotted names; shared parameters appear once."""
        seen: set[int] = set()
        mods = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mod_name, mod in mods:
            for name, p in mod._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mod_name}.{name}" if mod_name else name), p

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        for mod_name, mod in self.named_modules(prefix):
            for name, b in mod._buffers.items():
                if b is not None:
                    yield (f"{mod_name}.{name}" if mod_name else name), b

    def buffers(self) -> Iterator[Tensor]:
        for _, b in self.named_buffers():
            yield b

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
        optimizer built before the move keeps working); returns self.

        `m.to("cuda")`, `m.to(gnn.float64)`, `m.to("float64")`, `m.to("cpu", "float32")` and
        `m.to(tensor)` (its device and dtype) work, as for Tensor.to.
        """
        device, dtype = to_arguments(device, dtype, "Module.to")
        be = get_backend(device) if device is not None else None
        for m in self.modules():
            for store in (m._parameters, m._buffers):
                for t in store.values():
                    if t is not None:
                        _move_in_place(t, be, dtype)
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

    def _state_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """(dotted prefix, module) for the state dict: every path, so a module reachable under
        two names appears under both (as PyTorch's state_dict does), parents before children."""
        stack = [(prefix, self)]
        while stack:
            name, mod = stack.pop()
            yield name, mod
            children = [
                (f"{name}.{k}" if name else k, m) for k, m in mod._modules.items() if m is not None
            ]
            stack.extend(reversed(children))

    def _state_tensors(self) -> Iterator[tuple[str, Tensor]]:
        """(key, tensor) of every parameter and persistent buffer, in PyTorch's key order."""
        for mod_name, mod in self._state_modules():
            pre = f"{mod_name}." if mod_name else ""
            for name, p in mod._parameters.items():
                if p is not None:
                    yield pre + name, p
            for name, b in mod._buffers.items():
                if b is not None and name not in mod._non_persistent:
                    yield pre + name, b

    def state_dict(self, prefix: str = "", keep_vars: bool = False) -> OrderedDict[str, Tensor]:
        """Parameters and persistent buffers by dotted name, each key after `prefix`; detached
        views that share memory, or the Parameters themselves with keep_vars=True."""
        return OrderedDict(
            (prefix + k, t if keep_vars else t.detach()) for k, t in self._state_tensors()
        )

    def load_state_dict(self, state_dict: dict, strict: bool = True) -> tuple[list[str], list[str]]:
        """Copy values in by name; returns (missing_keys, unexpected_keys).

        With strict=True, any missing or unexpected key, or any shape mismatch, raises one error
        that lists them all (shape mismatches raise with strict=False too, as in PyTorch). Values
        may be Tensors or numeric arrays from any device. All or nothing: every key, shape and
        dtype is checked and every value converted before the first copy, so a failed load
        leaves the model unchanged.
        """
        who = f"{type(self).__name__}.load_state_dict"
        if isinstance(state_dict, (str, bytes, os.PathLike)):
            raise TypeError(
                f"{who}: got a path ({os.fsdecode(state_dict)!r}); pass a dict; use "
                "gnn.load(path) to read a weights file: model.load_state_dict(gnn.load(path))"
            )
        if not isinstance(state_dict, Mapping):
            raise TypeError(
                f"{who}: expected a dict of name -> Tensor, got {type(state_dict).__name__}"
            )
        own = OrderedDict(self._state_tensors())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        mismatched, wrong_type = [], []
        hosts: dict[str, Any] = {}
        for k, target in own.items():
            if k not in state_dict:
                continue
            value = state_dict[k]
            if isinstance(value, Tensor):
                src = value.numpy() if value._be is not target._be else value.array
            else:
                try:
                    src = value if hasattr(value, "__array_namespace__") else np.asarray(value)
                except (TypeError, ValueError) as e:
                    wrong_type.append(f"{k}: a {type(value).__name__} ({e})")
                    continue
            kind = getattr(getattr(src, "dtype", None), "kind", None)
            if getattr(getattr(src, "dtype", None), "name", None) == "bfloat16":
                kind = "f"  # ml_dtypes' bfloat16 reports kind "V"
            if kind not in ("b", "i", "u", "f"):
                what = getattr(src, "dtype", type(value).__name__)
                wrong_type.append(f"{k}: dtype {what} is not numeric (model {target.dtype})")
                continue
            shape = tuple(src.shape)
            if shape != target.shape:
                mismatched.append(f"{k}: checkpoint {shape} vs model {target.shape}")
                continue
            hosts[k] = src
        problems = []
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(map(str, unexpected)))
        if mismatched:
            problems.append("size mismatch: " + "; ".join(mismatched))
        if wrong_type:
            problems.append("wrong type: " + "; ".join(wrong_type))
        if problems:
            raise RuntimeError(
                f"error(s) loading state_dict for {type(self).__name__}:\n  "
                + "\n  ".join(problems)
            )
        # Convert everything first (a failure here still changes nothing), then copy.
        ready = [(own[k], own[k]._be.asarray(src, dtype=own[k].dtype)) for k, src in hosts.items()]
        for dest, data in ready:
            dest.array[...] = data
        return missing, unexpected

    # ---- calling -------------------------------------------------------------------------------

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    # A module's hooks live in `_hooks`, made on the first registration. __call__ is hot, so
    # while no module anywhere has a hook it reads one global and nothing else.
    _hooks: _Hooks | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if args and not isinstance(args[0], Tensor) and type(self).__module__.startswith("gnn."):
            _check_layer_input(self, args[0])
        if not _HOOKED or self._hooks is None:
            return self.forward(*args, **kwargs)
        return self._hooks.call(self, args, kwargs)

    def register_forward_pre_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        """Call hook(module, args) before each forward; a non-None result replaces the args (a
        tuple, or one value for a single argument). Returns a handle whose .remove() undoes it."""
        return self._hook_store().add(self, "pre", hook)

    def register_forward_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        """Call hook(module, args, output) after each forward; a non-None result replaces the
        output. Returns a handle whose .remove() undoes it."""
        return self._hook_store().add(self, "post", hook)

    def _hook_store(self) -> _Hooks:
        global _HOOKED
        hooks = self._hooks
        if hooks is None:
            hooks = _Hooks()
            object.__setattr__(self, "_hooks", hooks)
            _HOOKED += 1
        return hooks

    # ---- printing ------------------------------------------------------------------------------

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = []
        for name, m in self._modules.items():
            body = repr(m).replace("\n", "\n  ")
            lines.append(f"({name}): {body}")
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"

    def __dir__(self) -> list[str]:
        return sorted(
            set(super().__dir__()) | set(self._parameters) | set(self._modules) | set(self._buffers)
        )


_HOOKED = 0  # how many modules hold forward hooks (Module.__call__ skips them all at 0)


class _Hooks:
    """A module's forward pre-hooks and forward hooks, in registration order."""

    def __init__(self) -> None:
        self.pre: dict[int, Callable[..., Any]] = {}
        self.post: dict[int, Callable[..., Any]] = {}
        self.next_id = 0

    def __deepcopy__(self, memo: dict) -> _Hooks:
        global _HOOKED  # a deep-copied module keeps its hooks, and they must run
        copy = _Hooks()
        copy.pre, copy.post, copy.next_id = dict(self.pre), dict(self.post), self.next_id
        _HOOKED += 1
        return copy

    def add(self, module: Module, kind: str, hook: Callable[..., Any]) -> RemovableHandle:
        if not callable(hook):
            raise TypeError(f"a forward hook must be callable, got {type(hook).__name__}")
        self.next_id += 1
        getattr(self, kind)[self.next_id] = hook
        return RemovableHandle(module, kind, self.next_id)

    def call(self, module: Module, args: tuple, kwargs: dict) -> Any:
        for hook in list(self.pre.values()):
            result = hook(module, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        output = module.forward(*args, **kwargs)
        for hook in list(self.post.values()):
            result = hook(module, args, output)
            if result is not None:
                output = result
        return output


class RemovableHandle:
    """What register_forward_hook returns: .remove() takes the hook off (again: no-op)."""

    def __init__(self, module: Module, kind: str, hook_id: int) -> None:
        self.module, self.kind, self.id = module, kind, hook_id

    def remove(self) -> None:
        hooks = self.module._hooks
        if hooks is None:
            return
        getattr(hooks, self.kind).pop(self.id, None)
        if not hooks.pre and not hooks.post and self.module.__dict__.pop("_hooks", None):
            global _HOOKED  # one module fewer with hooks: back to the fast path at zero
            _HOOKED -= 1

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def _check_layer_input(module: Module, x: Any) -> None:
    """A gnn layer given a NumPy/CuPy array or a list: a TypeError that says what to do.

    Only gnn's own layers are checked (a user's Module may take anything), and only their first
    argument, the input: otherwise the layer would fail deep inside with an AttributeError.
    """
    name = type(module).__name__
    if isinstance(x, (list, tuple)) and x and not any(isinstance(v, Tensor) for v in x):
        what = f"a Python {type(x).__name__}"
    elif hasattr(x, "__array__") or hasattr(x, "__cuda_array_interface__"):
        what = f"a {type(x).__module__.split('.')[0]}.{type(x).__name__}"
    else:
        return
    raise TypeError(
        f"{name}: the input is {what}, not a gnn Tensor; convert it first with "
        f"gnn.tensor(x) (on the model's device: gnn.tensor(x, device=...)); Keras-style "
        "model.fit/evaluate/predict take arrays directly"
    )


def _move_in_place(t: Tensor, be: Any, dtype: Any) -> None:
    """Point t at a copy of its data on another backend and/or dtype; its .grad moves too."""
    from gnn.dtypes import is_floating, parse_dtype

    new_be = be or t._be
    data = t.array
    if new_be is not t._be:
        data = new_be.asarray(t._be.to_numpy(data))
    if dtype is not None:
        dt = parse_dtype(dtype)
        if is_floating(data.dtype) and is_floating(dt):  # integer buffers keep their dtype
            data = data.astype(dt)
    t.array, t._be = data, new_be
    if t.grad is not None:
        _move_in_place(t.grad, be, dtype)


__all__ = ["Module", "RemovableHandle", "parse_device"]
