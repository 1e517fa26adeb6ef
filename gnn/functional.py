"""gnn.functional (imported as F): every differentiable op, PyTorch-named.

The ops are written in gnn/ops/; this module gathers their public functions in one namespace and
binds itself as the implementation behind Tensor's operators and methods.
"""

from __future__ import annotations

import sys

from gnn import tensor as _tensor_module
from gnn.ops.attention import scaled_dot_product_attention
from gnn.ops.dropout import dropout
from gnn.ops.elementwise import (
    abs,
    add,
    clamp,
    clone,
    div,
    eq,
    exp,
    ge,
    gelu,
    gt,
    le,
    leaky_relu,
    log,
    lt,
    masked_fill,
    mul,
    ne,
    neg,
    pow,
    relu,
    sigmoid,
    sqrt,
    sub,
    tanh,
    where,
)
from gnn.ops.embedding import embedding
from gnn.ops.layer_norm import layer_norm
from gnn.ops.linalg import linear, matmul
from gnn.ops.loss import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    l1_loss,
    mse_loss,
    nll_loss,
)
from gnn.ops.reduce import (
    argmax,
    argmin,
    log_softmax,
    max,
    mean,
    min,
    softmax,
    std,
    sum,
    var,
)
from gnn.ops.shape import (
    cast,
    cat,
    expand,
    flatten,
    getitem,
    permute,
    reshape,
    squeeze,
    stack,
    to_device,
    transpose,
    unsqueeze,
    view,
)

__all__ = [
    "abs", "add", "argmax", "argmin", "binary_cross_entropy", "binary_cross_entropy_with_logits",
    "cast", "cat", "clamp", "clone", "cross_entropy", "div", "dropout", "eq", "exp", "expand",
    "flatten", "ge", "gelu", "getitem", "gt", "l1_loss", "le", "leaky_relu", "linear", "log",
    "log_softmax", "lt", "masked_fill", "matmul", "max", "mean", "min", "mse_loss", "mul", "ne",
    "neg", "nll_loss", "permute", "pow", "relu", "reshape", "sigmoid", "softmax", "sqrt",
    "squeeze", "stack", "std", "sub", "sum", "tanh", "to_device", "transpose", "unsqueeze", "var",
    "view", "where",
]  # fmt: skip
__all__ += ["embedding", "layer_norm", "scaled_dot_product_attention"]
from gnn.ops.batch_norm import batch_norm  # noqa: E402
from gnn.ops.conv import avg_pool2d, conv2d, conv_transpose2d, max_pool2d  # noqa: E402

__all__ += ["avg_pool2d", "batch_norm", "conv2d", "conv_transpose2d", "max_pool2d"]
from gnn.ops.linalg import bmm, mm  # noqa: E402
from gnn.ops.reduce import cumsum, logsumexp  # noqa: E402
from gnn.ops.select import (  # noqa: E402
    chunk,
    flip,
    gather,
    index_select,
    narrow,
    repeat,
    sort,
    split,
    t,
    topk,
    tril,
    triu,
)
from gnn.ops.unary import (  # noqa: E402
    ceil,
    cos,
    expm1,
    floor,
    isfinite,
    isnan,
    log1p,
    reciprocal,
    round,
    rsqrt,
    sign,
    silu,
    sin,
    softplus,
    square,
)

__all__ += [
    "bmm", "ceil", "chunk", "cos", "cumsum", "expm1", "flip", "floor", "gather", "index_select",
    "isfinite", "isnan", "log1p", "logsumexp", "mm", "narrow", "reciprocal", "repeat", "round",
    "rsqrt", "sign", "silu", "sin", "softplus", "sort", "split", "square", "t", "topk", "tril",
    "triu",
]  # fmt: skip

from gnn.ops.torch_names import (  # noqa: E402  (PyTorch's other spellings)
    absolute,
    argsort,
    clip,
    concat,
    concatenate,
    divide,
    greater,
    greater_equal,
    less,
    less_equal,
    multinomial,
    multiply,
    negative,
    not_equal,
    subtract,
    swapaxes,
    swapdims,
    true_divide,
    unbind,
)

__all__ += [
    "absolute", "argsort", "clip", "concat", "concatenate", "divide", "greater", "greater_equal",
    "less", "less_equal", "multinomial", "multiply", "negative", "not_equal", "subtract",
    "swapaxes", "swapdims", "true_divide", "unbind",
]  # fmt: skip

_tensor_module.F = sys.modules[__name__]
