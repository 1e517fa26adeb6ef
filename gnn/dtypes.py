"""gnn's dtypes (NumPy dtype objects) and the parser that turns user input into one.

bfloat16 comes from ml_dtypes (a runtime dependency), imported on first use so that `import gnn`
stays fast. NumPy reports its kind as "V" (void), not "f": test floating dtypes with
`is_floating`, never with `dtype.kind == "f"`. On the CPU bfloat16 is a storage format: the ops
that matter (matmul, linear, conv, attention) widen it to float32, compute, and round back.
"""

from __future__ import annotations

from typing import Any

import numpy as np

float16 = np.dtype("float16")
float32 = np.dtype("float32")
float64 = np.dtype("float64")
int32 = np.dtype("int32")
int64 = np.dtype("int64")
bool_ = np.dtype("bool")

SUPPORTED = (float16, float32, float64, int32, int64, bool_)
# NumPy's names of the supported dtypes, and PyTorch's other names for them
_BY_NAME: dict[str, np.dtype] = {dt.name: dt for dt in SUPPORTED}
_BY_NAME.update(half=float16, float=float32, double=float64, int=int32, long=int64)
# ... Python's own types, and the dtypes themselves (a dtype's .name takes microseconds)
_KNOWN: dict[Any, np.dtype] = {**_BY_NAME, float: float32, int: int64, bool: bool_}
_KNOWN.update({dt: dt for dt in SUPPORTED})
_BFLOAT16_NAMES = ("bfloat16", "bf16")


def bfloat16_dtype() -> np.dtype:
    """NumPy's bfloat16 dtype from ml_dtypes (imported here, on first use)."""
    import ml_dtypes  # a dependency of gnn; imported late to keep `import gnn` light

    return np.dtype(ml_dtypes.bfloat16)


def is_bfloat16(dtype: Any) -> bool:
    """True for ml_dtypes' bfloat16 (by name: no import of ml_dtypes needed to ask). Its kind is
    read first: "V" for bfloat16, and a dtype's name takes microseconds (ops ask per input)."""
    return getattr(dtype, "kind", None) == "V" and dtype.name == "bfloat16"


def __getattr__(name: str) -> Any:
    """gnn.dtypes.bfloat16, loaded lazily (ml_dtypes takes a while to import)."""
    if name == "bfloat16":
        return bfloat16_dtype()
    raise AttributeError(f"module 'gnn.dtypes' has no attribute {name!r}")


def parse_dtype(dtype: Any, who: str = "") -> np.dtype:
    """Turn a gnn/NumPy dtype, a Python type or a name like "float32" into a NumPy dtype.

    `who` starts the message that refuses a dtype gnn cannot compute in (as "tensor(): ")."""
    if dtype is None:  # np.dtype(None) would silently be float64
        raise TypeError("dtype None: pass a dtype such as gnn.float32 (or leave the argument out)")
    if isinstance(dtype, (str, type, np.dtype)) and dtype in _KNOWN:
        return _KNOWN[dtype]
    if (isinstance(dtype, str) and dtype in _BFLOAT16_NAMES) or is_bfloat16(dtype):
        return bfloat16_dtype()
    try:
        dt = np.dtype(dtype)  # also NumPy's names ("uint8", "f4") for storage dtypes
    except TypeError:
        raise TypeError(f"unknown dtype {dtype!r}; known: {', '.join(sorted(_BY_NAME))}") from None
    # Other NumPy dtypes (uint8, int16, ...) are accepted as storage; math promotes them.
    if dt.kind not in "biuf" and not is_bfloat16(dt):  # ml_dtypes.bfloat16 given as a type
        raise TypeError(
            f"{who}unsupported dtype {dt}; gnn supports bool, integer and floating dtypes "
            "(float16, bfloat16, float32, float64)"
        )
    return dt


def is_floating(dtype: Any) -> bool:
    """True for float16/32/64 and bfloat16 (whose NumPy kind is "V", not "f")."""
    dt = np.dtype(dtype)
    return dt.kind == "f" or is_bfloat16(dt)
