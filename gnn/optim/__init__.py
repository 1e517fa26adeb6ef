"""gnn.optim: optimizers with PyTorch's update rules and defaults, and lr schedules."""

from gnn.optim import lr_scheduler
from gnn.optim.adam import Adam, AdamW
from gnn.optim.optimizer import Optimizer
from gnn.optim.rmsprop import RMSprop
from gnn.optim.sgd import SGD

__all__ = ["Adam", "AdamW", "Optimizer", "RMSprop", "SGD", "lr_scheduler"]
