"""gnn.data: Dataset, TensorDataset, Subset, DataLoader, DistributedSampler and random_split, with
PyTorch's names."""

from gnn.data.dataset import Dataset, Subset, TensorDataset, random_split
from gnn.data.loader import DataLoader, default_collate
from gnn.data.sampler import DistributedSampler

__all__ = [
    "DataLoader", "Dataset", "DistributedSampler", "Subset", "TensorDataset", "default_collate",
    "random_split",
]  # fmt: skip
