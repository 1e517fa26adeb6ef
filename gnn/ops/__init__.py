"""Differentiable ops: each is a Function (forward + backward on raw arrays) and a public function.

Each op module registers its ops with gnn.ops.registry as it loads; importing this package loads
them all, which is what makes gnn.functional, Tensor's op methods and gnn's op names complete.
"""

from gnn.ops import (  # noqa: F401  (imported for their registrations)
    attention,
    batch_norm,
    bias_gelu,
    conv,
    dropout,
    elementwise,
    embedding,
    layer_norm,
    linalg,
    loss,
    reduce,
    sampling,
    select,
    shape,
    unary,
)
