"""torch.backends.cuda switches: `matmul.allow_tf32` and friends, accepted and recorded.

gnn's float32 matmuls on the GPU run in full float32 (CuPy's default, no TF32), which is what
PyTorch does with allow_tf32 = False, its default; setting it True is accepted and changes
nothing, so results stay float32-exact.
"""

from __future__ import annotations

from gnn.backend import cuda_available

__all__ = ["is_built", "matmul"]


class _MatmulSettings:
    """torch.backends.cuda.matmul: attributes scripts set before training."""

    def __init__(self) -> None:
        self.allow_tf32 = False
        self.allow_fp16_reduced_precision_reduction = True
        self.allow_bf16_reduced_precision_reduction = True

    def __repr__(self) -> str:
        return f"matmul(allow_tf32={self.allow_tf32})"


matmul = _MatmulSettings()


def is_built() -> bool:
    """True when gnn can use CUDA here (CuPy installed and a GPU visible)."""
    return cuda_available()
