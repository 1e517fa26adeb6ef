"""gnn: a compact deep-learning library; the same model code on NumPy (CPU) or CuPy (GPU)."""

from __future__ import annotations

__version__ = "0.1.0"

from gnn import functional  # loads the ops: gnn.functional, Tensor's op methods
from gnn.backend import (
    Device,
    cuda_available,
    default_device,
    get_default_device,
    set_default_device,
)
from gnn.config import (
    default_dtype,
    enable_grad,
    get_default_dtype,
    is_grad_enabled,
    manual_seed,
    no_grad,
    set_default_dtype,
    set_grad_enabled,
)
from gnn.creation import (
    arange,
    eye,
    from_numpy,
    full,
    full_like,
    linspace,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    tensor,
    zeros,
    zeros_like,
)
from gnn.dlpack import from_dlpack, to_dlpack
from gnn.dtypes import bool_, float16, float32, float64, int32, int64
from gnn.ops.registry import top_level
from gnn.tensor import Tensor, is_floating_point, is_tensor, numel

device = Device  # gnn.device("cuda:0"), as torch.device
inference_mode = no_grad  # gnn keeps no graph under either
bool = bool_  # gnn.bool, as torch.bool
float = float32
double = float64
half = float16
long = int64

globals().update(top_level())  # the torch.* names of the ops (gnn/ops/registry.py)

__all__ = [
    "Device", "Tensor", "arange", "bool", "cuda_available", "default_device", "default_dtype",
    "device", "double", "enable_grad", "eye", "float", "float16", "float32", "float64",
    "from_dlpack", "from_numpy", "full", "full_like", "functional", "get_default_device",
    "get_default_dtype", "half", "inference_mode", "int32", "int64", "is_floating_point",
    "is_grad_enabled", "is_tensor", "linspace", "long", "manual_seed", "no_grad", "numel", "ones",
    "ones_like", "rand", "rand_like", "randint", "randn", "randn_like", "set_default_device",
    "set_default_dtype", "set_grad_enabled", "tensor", "to_dlpack", "zeros", "zeros_like",
]  # fmt: skip
__all__ += ["amp", "autocast", "bfloat16"]
__all__ += sorted(top_level())


def __getattr__(name: str):
    """Load the heavier subpackages (nn, optim, data, ...) on first use, keeping import gnn fast."""
    import importlib

    lazy = {
        "nn", "optim", "data", "datasets", "testing", "io", "layers", "train", "models",
        "examples", "cli", "cuda", "accelerator", "backends", "serialization", "utils", "onnx",
        "amp", "distributed", "callbacks", "losses", "metrics", "optimizers",
    }  # fmt: skip
    if name in lazy:
        return importlib.import_module(f"gnn.{name}")
    if name in ("Sequential", "Model"):  # the Keras face (gnn.train.model)
        return getattr(importlib.import_module("gnn.train.model"), name)
    if name == "NeuralNetwork":  # the brain.js face
        return importlib.import_module("gnn.simple").NeuralNetwork
    if name == "bfloat16":  # ml_dtypes' bfloat16, imported on first use (it is slow to import)
        return importlib.import_module("gnn.dtypes").bfloat16_dtype()
    if name == "autocast":  # mixed precision (gnn.amp)
        return importlib.import_module("gnn.amp").autocast
    if name in ("set_float32_matmul_precision", "get_float32_matmul_precision"):
        return getattr(importlib.import_module("gnn.backends"), name)
    if name in ("save", "load"):  # torch.save / torch.load, in safetensors (gnn.serialization)
        return getattr(importlib.import_module("gnn.serialization"), name)
    if name in ("save_checkpoint", "load_checkpoint"):  # training state (gnn.io)
        return getattr(importlib.import_module("gnn.io"), name)
    raise AttributeError(f"module 'gnn' has no attribute {name!r}")
