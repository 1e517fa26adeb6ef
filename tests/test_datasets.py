"""The shipped data sets (Titanic, digits, a novel) and train_test_split, checked on real values."""

from __future__ import annotations

import subprocess
import sys
from importlib import resources

import numpy as np
import pytest

from gnn import datasets

# ---- files ---------------------------------------------------------------------------------------


def test_shipped_files_are_present_and_small():
    folder = resources.files("gnn.datasets").joinpath("data")
    sizes = {
        name: len(folder.joinpath(name).read_bytes())
        for name in ("titanic.csv", "digits.csv.gz", "pride_and_prejudice.txt.gz")
    }
    assert all(size > 10_000 for size in sizes.values()), sizes
    assert sum(sizes.values()) < 2_000_000, sizes


def test_import_reads_nothing_heavy():
    # a fresh interpreter: importing gnn.datasets must not pull in pandas, scikit-learn or cupy
    code = (
        "import sys, gnn.datasets; "
        "print(sorted(m for m in ('pandas', 'sklearn', 'cupy', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---- Titanic -------------------------------------------------------------------------------------


def test_titanic_shapes_and_known_counts():
    ds = datasets.titanic()
    assert ds.x.shape == (1309, 8) and ds.x.dtype == np.float32
    assert ds.y.shape == (1309, 1) and ds.y.dtype == np.float32
    assert len(ds) == 1309
    assert int(ds.y.sum()) == 500  # titanic3: 500 of the 1,309 passengers survived
    assert set(np.unique(ds.y)) == {0.0, 1.0}
    assert ds.feature_names == [
        "pclass_1",
        "pclass_2",
        "pclass_3",
        "sex_female",
        "sex_male",
        "age",
        "sibsp",
        "parch",
    ]
    assert ds.target_names == ["died", "survived"]


def test_titanic_preprocessed_has_no_nan_and_valid_one_hots():
    ds = datasets.titanic()
    assert not np.isnan(ds.x).any()
    pclass, sex = ds.x[:, 0:3], ds.x[:, 3:5]
    assert set(np.unique(pclass)) == {0.0, 1.0} and set(np.unique(sex)) == {0.0, 1.0}
    np.testing.assert_array_equal(pclass.sum(axis=1), 1.0)
    np.testing.assert_array_equal(sex.sum(axis=1), 1.0)
    assert pclass.sum(axis=0).tolist() == [323, 277, 709]
    assert sex.sum(axis=0).tolist() == [466, 843]
    scaled = ds.x[:, 5:].astype(np.float64)
    np.testing.assert_allclose(scaled.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(scaled.std(axis=0), 1.0, atol=1e-5)


def test_titanic_survival_by_sex_matches_the_known_table():
    ds = datasets.titanic()
    female = ds.x[:, 3] == 1.0
    # titanic3: 339 of 466 women and 161 of 843 men survived
    assert int(ds.y[female].sum()) == 339
    assert int(ds.y[~female].sum()) == 161


def test_titanic_raw_columns_and_the_median_fill():
    raw = datasets.titanic(preprocess=False)
    assert raw.feature_names == ["pclass", "sex", "age", "sibsp", "parch"]
    assert raw.x.shape == (1309, 5) and raw.x.dtype == np.float32
    age = raw.x[:, 2]
    missing = np.isnan(age)
    assert int(missing.sum()) == 263
    assert float(np.median(age[~missing])) == 28.0
    assert set(np.unique(raw.x[:, 0])) == {1.0, 2.0, 3.0}
    assert int(raw.x[:, 1].sum()) == 843  # sex: 1 = male
    assert raw.x[:, 3].max() == 8 and raw.x[:, 4].max() == 9
    np.testing.assert_allclose(raw.x[1], [1, 1, 0.9167, 1, 2], rtol=1e-6)  # the infant in 1st class

    # preprocessed: every missing age became the median, so after scaling they share one value
    scaled_age = datasets.titanic().x[:, 5]
    known = age[~missing].astype(np.float64)
    filled = np.where(missing, 28.0, age.astype(np.float64))
    expected = (28.0 - filled.mean()) / filled.std()
    np.testing.assert_allclose(scaled_age[missing], expected, rtol=1e-5)
    assert known.min() < 1.0 and known.max() == 80.0


# ---- digits --------------------------------------------------------------------------------------


def test_digits_shapes_scale_and_class_counts():
    ds = datasets.digits()
    assert ds.x.shape == (1797, 64) and ds.x.dtype == np.float32
    assert ds.y.shape == (1797,) and ds.y.dtype == np.int64
    assert ds.x.min() == 0.0 and ds.x.max() == 1.0
    np.testing.assert_array_equal(ds.x * 16, np.round(ds.x * 16))  # counts of 0..16 pixels
    # UCI optdigits.tes class counts
    assert np.bincount(ds.y).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert ds.feature_names[0] == "pixel_0_0" and ds.feature_names[63] == "pixel_7_7"
    assert len(ds.feature_names) == 64
    assert ds.target_names == [str(d) for d in range(10)]


def test_digits_first_image():
    ds = datasets.digits()
    images = ds.x.reshape(-1, 1, 8, 8)
    assert images.shape == (1797, 1, 8, 8)
    assert ds.y[0] == 0
    np.testing.assert_array_equal(images[0, 0, 0] * 16, [0, 0, 5, 13, 9, 1, 0, 0])
    np.testing.assert_array_equal(images[0, 0, :, 0], 0)  # a zero: the left column is empty


# ---- text ----------------------------------------------------------------------------------------


def test_text_corpus_is_the_novel():
    text = datasets.text_corpus()
    assert 500_000 < len(text) < 2_000_000
    assert text.startswith("PRIDE AND PREJUDICE")
    assert "It is a truth universally acknowledged" in text
    assert "Gutenberg" not in text  # no licence boilerplate, only the work
    printable = sum(ch.isprintable() or ch in "\n\t" for ch in text)
    assert printable / len(text) > 0.999
    assert len(set(text)) < 100  # a small character vocabulary for a char-level model


def test_text_corpus_max_chars_and_source():
    full = datasets.text_corpus()
    assert datasets.text_corpus(max_chars=100) == full[:100]
    assert datasets.text_corpus(max_chars=0) == ""
    assert datasets.text_corpus(max_chars=10**9) == full
    with pytest.raises(ValueError, match="max_chars"):
        datasets.text_corpus(max_chars=-1)
    source = datasets.text_source()
    assert "Austen" in source and "Pride and Prejudice" in source and "\n" not in source


# ---- train_test_split ----------------------------------------------------------------------------


def test_split_is_deterministic_and_a_partition():
    x = np.arange(100).reshape(50, 2)
    y = np.arange(50)
    first = datasets.train_test_split(x, y, test_fraction=0.2, seed=3)
    again = datasets.train_test_split(x, y, test_fraction=0.2, seed=3)
    other = datasets.train_test_split(x, y, test_fraction=0.2, seed=4)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[1], other[1])
    x_tr, x_te, y_tr, y_te = first
    assert x_tr.shape == (40, 2) and x_te.shape == (10, 2) and y_tr.shape == (40,)
    np.testing.assert_array_equal(x_tr[:, 0] // 2, y_tr)  # rows stay paired with their labels
    np.testing.assert_array_equal(x_te[:, 0] // 2, y_te)
    assert sorted(np.concatenate([y_tr, y_te]).tolist()) == list(range(50))


def test_split_sizes_round_up_without_float_noise():
    x = np.arange(10)
    assert len(datasets.train_test_split(x, x, test_fraction=0.3)[1]) == 3
    assert len(datasets.train_test_split(x, x, test_fraction=0.01)[1]) == 1
    assert len(datasets.train_test_split(x, x, test_fraction=0.99)[1]) == 9


def test_stratified_split_keeps_class_shares():
    ds = datasets.titanic()
    x_tr, x_te, y_tr, y_te = datasets.train_test_split(
        ds.x, ds.y, test_fraction=0.2, seed=0, stratify=True
    )
    assert len(x_te) == 262 and len(x_tr) == 1047
    assert int(y_te.sum()) == 100 and int(y_tr.sum()) == 400  # 500 * 262 / 1309 = 100.08

    digits = datasets.digits()
    _, _, _, y_te = datasets.train_test_split(
        digits.x, digits.y, test_fraction=0.2, seed=1, stratify=True
    )
    counts = np.bincount(y_te, minlength=10)
    assert counts.sum() == 360 and counts.min() >= 35 and counts.max() <= 37

    one_hot = np.eye(3)[np.repeat([0, 1, 2], [10, 20, 30])]
    _, _, _, oh_te = datasets.train_test_split(one_hot, one_hot, 0.5, stratify=True)
    assert oh_te.sum(axis=0).tolist() == [5, 10, 15]


def test_split_errors():
    x, y = np.zeros((10, 2)), np.zeros(10)
    for bad in (0.0, 1.0, -0.1, 1.5, float("nan"), None, "half"):
        with pytest.raises(ValueError, match="test_fraction"):
            datasets.train_test_split(x, y, test_fraction=bad)
    with pytest.raises(ValueError, match="10 rows .* 9"):
        datasets.train_test_split(x, y[:9])
    with pytest.raises(ValueError, match="at least 2"):
        datasets.train_test_split(x[:1], y[:1])
