"""gnn.data: Dataset, TensorDataset, Subset, DataLoader and random_split, with PyTorch's names."""

from gnn.data.dataset import Dataset, Subset, TensorDataset, random_split
from gnn.data.loader import DataLoader, default_collate

__all__ = ["DataLoader", "Dataset", "Subset", "TensorDataset", "default_collate", "random_split"]
