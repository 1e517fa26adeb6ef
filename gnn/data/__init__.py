"""gnn.data: datasets, samplers and DataLoader (with worker processes), with PyTorch's names."""

from gnn.data.dataset import ConcatDataset, Dataset, Subset, TensorDataset, random_split
from gnn.data.loader import DataLoader, default_collate, default_convert
from gnn.data.sampler import (
    BatchSampler,
    DistributedSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
)
from gnn.data.worker import WorkerInfo, get_worker_info

__all__ = [
    "BatchSampler", "ConcatDataset", "DataLoader", "Dataset", "DistributedSampler",
    "RandomSampler", "Sampler", "SequentialSampler", "Subset", "SubsetRandomSampler",
    "TensorDataset", "WeightedRandomSampler", "WorkerInfo", "default_collate", "default_convert",
    "get_worker_info", "random_split",
]  # fmt: skip
