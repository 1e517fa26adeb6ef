"""Containers: Sequential, ModuleList, ModuleDict."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any

from gnn.nn.module import Module


class Sequential(Module):
    """Modules applied in order; built from arguments, an OrderedDict, or .add() calls.

    The Keras-style `gnn.Sequential` is this plus gnn.train's Model (compile / fit / predict).
    """

    def __init__(self, *modules: Any) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, m in modules[0].items():
                self.add_module(name, _check_module(m, name))
        else:
            for i, m in enumerate(modules):
                self.add_module(str(i), _check_module(m, str(i)))

    def add(self, module: Module) -> Sequential:
        """Append a layer (Keras style); returns self."""
        self.add_module(str(len(self._modules)), _check_module(module, str(len(self._modules))))
        return self

    append = add

    def insert(self, index: int, module: Module) -> Sequential:
        """Insert a layer before position `index` (the layers after it are renumbered)."""
        _insert(self, index, module)
        return self

    def extend(self, modules: Iterable[Module]) -> Sequential:
        for m in modules:
            self.add(m)
        return self

    def __setitem__(self, index: int, module: Module) -> None:
        key = list(self._modules)[index]
        self._modules[key] = _check_module(module, key)

    def __delitem__(self, index: int | slice) -> None:
        _delete(self, index)

    def forward(self, x: Any) -> Any:
        for m in self._modules.values():
            x = m(x)
        return x

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):  # keeps the layers' names, as PyTorch's slicing does
            return Sequential(OrderedDict(list(self._modules.items())[index]))
        return list(self._modules.values())[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())


class ModuleList(Module):
    """A list of Modules whose parameters the parent sees."""

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        for m in modules or ():
            self.append(m)

    def append(self, module: Module) -> ModuleList:
        self.add_module(str(len(self._modules)), _check_module(module, str(len(self._modules))))
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> None:
        """Insert before position `index` (the modules after it are renumbered)."""
        _insert(self, index, module)

    def __delitem__(self, index: int | slice) -> None:
        _delete(self, index)

    def __getitem__(self, index: int | slice) -> Any:
        items = list(self._modules.values())
        return ModuleList(items[index]) if isinstance(index, slice) else items[index]

    def __setitem__(self, index: int, module: Module) -> None:
        key = list(self._modules)[index]
        self._modules[key] = _check_module(module, key)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())


class ModuleDict(Module):
    """A dict of Modules whose parameters the parent sees."""

    def __init__(self, modules: Any = None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def update(self, modules: Any) -> None:
        items = modules.items() if hasattr(modules, "items") else modules
        for k, m in items:
            self[k] = m

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, _check_module(module, key))

    def __contains__(self, key: str) -> bool:
        return key in self._modules

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def pop(self, key: str) -> Module:
        """Remove `key` and return its module."""
        return self._modules.pop(key)

    def clear(self) -> None:
        self._modules.clear()

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def keys(self) -> Any:
        return self._modules.keys()

    def values(self) -> Any:
        return self._modules.values()

    def items(self) -> Any:
        return self._modules.items()


def _renumber(container: Module, modules: list[Module]) -> None:
    """Refill the container with `modules` under the keys "0", "1", ... (as PyTorch does)."""
    container._modules.clear()
    for i, m in enumerate(modules):
        container._modules[str(i)] = m


def _insert(container: Module, index: int, module: Module) -> None:
    items = list(container._modules.values())
    items.insert(index, _check_module(module, str(index)))
    _renumber(container, items)


def _delete(container: Module, index: int | slice) -> None:
    items = list(container._modules.values())
    del items[index]
    _renumber(container, items)


def _check_module(m: Any, name: str) -> Module:
    if not isinstance(m, Module):
        raise TypeError(f"layer {name} is a {type(m).__name__}, not a gnn.nn.Module")
    return m
