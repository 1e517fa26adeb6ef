"""gnn.optim: optimizers with PyTorch's update rules and defaults, and lr schedules."""

from gnn.optim import lr_scheduler
from gnn.optim.adadelta import Adadelta
from gnn.optim.adagrad import Adagrad
from gnn.optim.adam import Adam, AdamW
from gnn.optim.lbfgs import LBFGS
from gnn.optim.nadam import NAdam
from gnn.optim.optimizer import Optimizer
from gnn.optim.radam import RAdam
from gnn.optim.rmsprop import RMSprop
from gnn.optim.sgd import SGD

__all__ = [
    "Adadelta", "Adagrad", "Adam", "AdamW", "LBFGS", "NAdam", "Optimizer", "RAdam", "RMSprop",
    "SGD", "lr_scheduler",
]  # fmt: skip
