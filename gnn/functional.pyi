"""Type stub of gnn/functional.py, generated from the op registry by
ci/functional_stub.py (do not edit: regenerate with `python ci/functional_stub.py --write`)."""

from gnn.ops.attention import scaled_dot_product_attention as scaled_dot_product_attention
from gnn.ops.batch_norm import batch_norm as batch_norm
from gnn.ops.bias_gelu import bias_gelu as bias_gelu
from gnn.ops.conv import avg_pool2d as avg_pool2d
from gnn.ops.conv import conv2d as conv2d
from gnn.ops.conv import conv_transpose2d as conv_transpose2d
from gnn.ops.conv import max_pool2d as max_pool2d
from gnn.ops.dropout import dropout as dropout
from gnn.ops.elementwise import abs as abs
from gnn.ops.elementwise import abs as absolute
from gnn.ops.elementwise import add as add
from gnn.ops.elementwise import clamp as clamp
from gnn.ops.elementwise import clamp as clip
from gnn.ops.elementwise import clone as clone
from gnn.ops.elementwise import div as div
from gnn.ops.elementwise import div as divide
from gnn.ops.elementwise import div as true_divide
from gnn.ops.elementwise import eq as eq
from gnn.ops.elementwise import exp as exp
from gnn.ops.elementwise import ge as ge
from gnn.ops.elementwise import ge as greater_equal
from gnn.ops.elementwise import gelu as gelu
from gnn.ops.elementwise import gt as greater
from gnn.ops.elementwise import gt as gt
from gnn.ops.elementwise import le as le
from gnn.ops.elementwise import le as less_equal
from gnn.ops.elementwise import leaky_relu as leaky_relu
from gnn.ops.elementwise import log as log
from gnn.ops.elementwise import lt as less
from gnn.ops.elementwise import lt as lt
from gnn.ops.elementwise import masked_fill as masked_fill
from gnn.ops.elementwise import mul as mul
from gnn.ops.elementwise import mul as multiply
from gnn.ops.elementwise import ne as ne
from gnn.ops.elementwise import ne as not_equal
from gnn.ops.elementwise import neg as neg
from gnn.ops.elementwise import neg as negative
from gnn.ops.elementwise import pow as pow
from gnn.ops.elementwise import relu as relu
from gnn.ops.elementwise import sigmoid as sigmoid
from gnn.ops.elementwise import sqrt as sqrt
from gnn.ops.elementwise import sub as sub
from gnn.ops.elementwise import sub as subtract
from gnn.ops.elementwise import tanh as tanh
from gnn.ops.elementwise import where as where
from gnn.ops.embedding import embedding as embedding
from gnn.ops.layer_norm import layer_norm as layer_norm
from gnn.ops.linalg import bmm as bmm
from gnn.ops.linalg import linear as linear
from gnn.ops.linalg import matmul as matmul
from gnn.ops.linalg import mm as mm
from gnn.ops.loss import binary_cross_entropy as binary_cross_entropy
from gnn.ops.loss import binary_cross_entropy_with_logits as binary_cross_entropy_with_logits
from gnn.ops.loss import cross_entropy as cross_entropy
from gnn.ops.loss import l1_loss as l1_loss
from gnn.ops.loss import mse_loss as mse_loss
from gnn.ops.loss import nll_loss as nll_loss
from gnn.ops.reduce import argmax as argmax
from gnn.ops.reduce import argmin as argmin
from gnn.ops.reduce import cumsum as cumsum
from gnn.ops.reduce import log_softmax as log_softmax
from gnn.ops.reduce import logsumexp as logsumexp
from gnn.ops.reduce import max as max
from gnn.ops.reduce import mean as mean
from gnn.ops.reduce import min as min
from gnn.ops.reduce import softmax as softmax
from gnn.ops.reduce import std as std
from gnn.ops.reduce import sum as sum
from gnn.ops.reduce import var as var
from gnn.ops.sampling import multinomial as multinomial
from gnn.ops.select import argsort as argsort
from gnn.ops.select import chunk as chunk
from gnn.ops.select import flip as flip
from gnn.ops.select import gather as gather
from gnn.ops.select import index_select as index_select
from gnn.ops.select import narrow as narrow
from gnn.ops.select import repeat as repeat
from gnn.ops.select import sort as sort
from gnn.ops.select import split as split
from gnn.ops.select import t as t
from gnn.ops.select import topk as topk
from gnn.ops.select import tril as tril
from gnn.ops.select import triu as triu
from gnn.ops.select import unbind as unbind
from gnn.ops.shape import cast as cast
from gnn.ops.shape import cat as cat
from gnn.ops.shape import cat as concat
from gnn.ops.shape import concatenate as concatenate
from gnn.ops.shape import expand as expand
from gnn.ops.shape import flatten as flatten
from gnn.ops.shape import getitem as getitem
from gnn.ops.shape import permute as permute
from gnn.ops.shape import reshape as reshape
from gnn.ops.shape import reshape as view
from gnn.ops.shape import squeeze as squeeze
from gnn.ops.shape import stack as stack
from gnn.ops.shape import swapaxes as swapaxes
from gnn.ops.shape import to_device as to_device
from gnn.ops.shape import transpose as swapdims
from gnn.ops.shape import transpose as transpose
from gnn.ops.shape import unsqueeze as unsqueeze
from gnn.ops.unary import ceil as ceil
from gnn.ops.unary import cos as cos
from gnn.ops.unary import expm1 as expm1
from gnn.ops.unary import floor as floor
from gnn.ops.unary import isfinite as isfinite
from gnn.ops.unary import isnan as isnan
from gnn.ops.unary import log1p as log1p
from gnn.ops.unary import reciprocal as reciprocal
from gnn.ops.unary import round as round
from gnn.ops.unary import rsqrt as rsqrt
from gnn.ops.unary import sign as sign
from gnn.ops.unary import silu as silu
from gnn.ops.unary import sin as sin
from gnn.ops.unary import softplus as softplus
from gnn.ops.unary import square as square

__all__ = [
    "abs",
    "absolute",
    "add",
    "argmax",
    "argmin",
    "argsort",
    "avg_pool2d",
    "batch_norm",
    "bias_gelu",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "bmm",
    "cast",
    "cat",
    "ceil",
    "chunk",
    "clamp",
    "clip",
    "clone",
    "concat",
    "concatenate",
    "conv2d",
    "conv_transpose2d",
    "cos",
    "cross_entropy",
    "cumsum",
    "div",
    "divide",
    "dropout",
    "embedding",
    "eq",
    "exp",
    "expand",
    "expm1",
    "flatten",
    "flip",
    "floor",
    "gather",
    "ge",
    "gelu",
    "getitem",
    "greater",
    "greater_equal",
    "gt",
    "index_select",
    "isfinite",
    "isnan",
    "l1_loss",
    "layer_norm",
    "le",
    "leaky_relu",
    "less",
    "less_equal",
    "linear",
    "log",
    "log1p",
    "log_softmax",
    "logsumexp",
    "lt",
    "masked_fill",
    "matmul",
    "max",
    "max_pool2d",
    "mean",
    "min",
    "mm",
    "mse_loss",
    "mul",
    "multinomial",
    "multiply",
    "narrow",
    "ne",
    "neg",
    "negative",
    "nll_loss",
    "not_equal",
    "permute",
    "pow",
    "reciprocal",
    "relu",
    "repeat",
    "reshape",
    "round",
    "rsqrt",
    "scaled_dot_product_attention",
    "sigmoid",
    "sign",
    "silu",
    "sin",
    "softmax",
    "softplus",
    "sort",
    "split",
    "sqrt",
    "square",
    "squeeze",
    "stack",
    "std",
    "sub",
    "subtract",
    "sum",
    "swapaxes",
    "swapdims",
    "t",
    "tanh",
    "to_device",
    "topk",
    "transpose",
    "tril",
    "triu",
    "true_divide",
    "unbind",
    "unsqueeze",
    "var",
    "view",
    "where",
]
