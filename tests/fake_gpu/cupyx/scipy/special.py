"""cupyx.scipy.special for the fake CuPy: only `erf`."""

from cupy import _erf as erf

__all__ = ["erf"]
