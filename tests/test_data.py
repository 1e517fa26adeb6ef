"""gnn.data: TensorDataset, DataLoader (batches, seeded shuffling, drop_last, collation), splits."""

import numpy as np
import pytest

import gnn
from gnn.data import DataLoader, Dataset, TensorDataset, random_split


def test_tensor_dataset_rows_and_length_check():
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    y = np.arange(6)
    ds = TensorDataset(x, y)
    assert len(ds) == 6
    xi, yi = ds[4]
    np.testing.assert_array_equal(xi, [8, 9])
    assert yi == 4
    with pytest.raises(ValueError, match="same first dimension"):
        TensorDataset(x, y[:5])


def test_loader_batches_cover_data_in_order():
    x = np.arange(10, dtype=np.float32).reshape(10, 1)
    y = np.arange(10)
    loader = DataLoader(TensorDataset(x, y), batch_size=4)
    batches = list(loader)
    assert len(loader) == 3 and len(batches) == 3
    assert [b[0].shape for b in batches] == [(4, 1), (4, 1), (2, 1)]
    assert isinstance(batches[0][0], gnn.Tensor)
    assert batches[0][0].dtype == np.float32 and batches[0][1].dtype == np.int64
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), y)


def test_drop_last():
    ds = TensorDataset(np.zeros((10, 1), np.float32))
    loader = DataLoader(ds, batch_size=4, drop_last=True)
    assert len(loader) == 2
    assert [b[0].shape[0] for b in loader] == [4, 4]


def test_shuffle_is_seeded_and_a_permutation():
    y = np.arange(50)
    ds = TensorDataset(y)

    def epoch_orders():
        gnn.manual_seed(123)
        loader = DataLoader(ds, batch_size=8, shuffle=True)
        return [np.concatenate([b[0].numpy() for b in loader]) for _ in range(2)]

    a1, a2 = epoch_orders()
    b1, b2 = epoch_orders()
    np.testing.assert_array_equal(a1, b1)  # same seed, same order
    np.testing.assert_array_equal(a2, b2)
    assert not np.array_equal(a1, a2)  # a new order each epoch
    np.testing.assert_array_equal(np.sort(a1), y)  # every sample exactly once
    assert not np.array_equal(a1, y)


def test_explicit_generator():
    ds = TensorDataset(np.arange(20))
    a = [b[0].numpy() for b in DataLoader(ds, 5, shuffle=True, generator=np.random.default_rng(7))]
    b = [b[0].numpy() for b in DataLoader(ds, 5, shuffle=True, generator=np.random.default_rng(7))]
    np.testing.assert_array_equal(np.concatenate(a), np.concatenate(b))


class Pairs(Dataset):
    """A dataset without __getitems__: samples are collated one by one."""

    def __len__(self):
        return 5

    def __getitem__(self, i):
        return {"x": np.full(3, i, np.float32), "label": i}, float(i) * 2


def test_collate_dicts_and_tuples():
    batch = next(iter(DataLoader(Pairs(), batch_size=3)))
    feats, target = batch
    assert feats["x"].shape == (3, 3)
    np.testing.assert_array_equal(feats["label"].numpy(), [0, 1, 2])
    np.testing.assert_allclose(target.numpy(), [0.0, 2.0, 4.0])


def test_loader_of_tensors_keeps_device_and_values():
    x = gnn.randn(7, 2)
    ds = TensorDataset(x)
    out = np.concatenate([b[0].numpy() for b in DataLoader(ds, batch_size=3)])
    np.testing.assert_array_equal(out, x.numpy())


def test_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(TensorDataset(np.zeros(3)), batch_size=0)


def test_random_split_counts_fractions_and_seed():
    ds = TensorDataset(np.arange(10))
    gnn.manual_seed(0)
    a, b = random_split(ds, [7, 3])
    assert (len(a), len(b)) == (7, 3)
    assert sorted(a.indices + b.indices) == list(range(10))
    gnn.manual_seed(0)
    a2, _ = random_split(ds, [7, 3])
    assert a.indices == a2.indices
    p, q, r = random_split(ds, [0.5, 0.3, 0.2])
    assert (len(p), len(q), len(r)) == (5, 3, 2)
    with pytest.raises(ValueError, match="sum to the dataset"):
        random_split(ds, [5, 4])


def test_subset_in_loader():
    ds = TensorDataset(np.arange(10) * 10)
    gnn.manual_seed(1)
    train, _ = random_split(ds, [6, 4])
    got = np.concatenate([b[0].numpy() for b in DataLoader(train, batch_size=4)])
    np.testing.assert_array_equal(got, np.array(train.indices) * 10)
