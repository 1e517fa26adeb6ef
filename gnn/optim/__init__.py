"""gnn.optim: optimizers with PyTorch's update rules and defaults."""

from gnn.optim.optimizer import Optimizer
from gnn.optim.sgd import SGD

__all__ = ["Optimizer", "SGD"]
