"""gnn.nn.modules: the layout of torch.nn.modules (module.Module, linear.Linear, ...), over the
classes of gnn.nn; `from gnn.nn.modules import Linear` works too."""

from __future__ import annotations

from gnn.nn.modules import (
    activation,
    batchnorm,
    container,
    conv,
    dropout,
    flatten,
    linear,
    loss,
    module,
    normalization,
    pooling,
    rnn,
    sparse,
    transformer,
)
from gnn.nn.modules.activation import *  # noqa: F403
from gnn.nn.modules.batchnorm import *  # noqa: F403
from gnn.nn.modules.container import *  # noqa: F403
from gnn.nn.modules.conv import *  # noqa: F403
from gnn.nn.modules.dropout import *  # noqa: F403
from gnn.nn.modules.flatten import *  # noqa: F403
from gnn.nn.modules.linear import *  # noqa: F403
from gnn.nn.modules.loss import *  # noqa: F403
from gnn.nn.modules.module import *  # noqa: F403
from gnn.nn.modules.normalization import *  # noqa: F403
from gnn.nn.modules.pooling import *  # noqa: F403
from gnn.nn.modules.rnn import *  # noqa: F403
from gnn.nn.modules.sparse import *  # noqa: F403
from gnn.nn.modules.transformer import *  # noqa: F403

_MODULES = (
    activation,
    batchnorm,
    container,
    conv,
    dropout,
    flatten,
    linear,
    loss,
    module,
    normalization,
    pooling,
    rnn,
    sparse,
    transformer,
)
__all__ = [name for m in _MODULES for name in m.__all__]
__all__ += [m.__name__.rpartition(".")[2] for m in _MODULES]
