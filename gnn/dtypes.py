"""gnn's dtypes (NumPy dtype objects) and the parser that turns user input into one."""

from __future__ import annotations

from typing import Any

import numpy as np

float16 = np.dtype("float16")
float32 = np.dtype("float32")
float64 = np.dtype("float64")
int32 = np.dtype("int32")
int64 = np.dtype("int64")
bool_ = np.dtype("bool")

_BY_NAME = {
    "float16": float16,
    "half": float16,
    "float32": float32,
    "float": float32,
    "float64": float64,
    "double": float64,
    "int32": int32,
    "int": int32,
    "int64": int64,
    "long": int64,
    "bool": bool_,
}
SUPPORTED = (float16, float32, float64, int32, int64, bool_)


def parse_dtype(dtype: Any) -> np.dtype:
    """Turn a gnn/NumPy dtype, a Python type or a name like "float32" into a NumPy dtype."""
    if dtype is None:  # np.dtype(None) would silently be float64
        raise TypeError("dtype None: pass a dtype such as gnn.float32 (or leave the argument out)")
    if isinstance(dtype, str) and dtype in _BY_NAME:
        return _BY_NAME[dtype]
    if dtype is float:
        return float32
    if dtype is int:
        return int64
    if dtype is bool:
        return bool_
    try:
        dt = np.dtype(dtype)  # also NumPy's names ("uint8", "f4") for storage dtypes
    except TypeError:
        raise TypeError(f"unknown dtype {dtype!r}; known: {', '.join(sorted(_BY_NAME))}") from None
    if dt not in SUPPORTED:
        # Other NumPy dtypes (uint8, int16, ...) are accepted as storage; math promotes them.
        if dt.kind not in "biuf":
            raise TypeError(
                f"unsupported dtype {dt}; gnn supports bool, integer and floating dtypes"
            )
    return dt


def is_floating(dtype: np.dtype) -> bool:
    return dtype.kind == "f"
