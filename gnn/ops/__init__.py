"""Differentiable ops: each is a Function (forward + backward on raw arrays) and a public function.

Each op module registers its ops with gnn.ops.registry as it loads; importing this package loads
every module in it, which is what makes gnn.functional, Tensor's op methods and gnn's op names
complete (a new op module needs no list to join).
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
