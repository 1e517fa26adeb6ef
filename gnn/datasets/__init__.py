"""Data sets shipped inside gnn (Titanic passengers, 8x8 digits, a public-domain novel) and a split.

The files live in gnn/datasets/data/ and are read on first call through importlib.resources, so
nothing downloads and importing this module reads no file. Sources and licences: docs/datasets.md.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
import math
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = [
    "TabularData",
    "digits",
    "text_corpus",
    "text_source",
    "titanic",
    "train_test_split",
]

_TITANIC_FILE = "titanic.csv"
_DIGITS_FILE = "digits.csv.gz"
_TEXT_FILE = "pride_and_prejudice.txt.gz"
_TITANIC_COLUMNS = ["survived", "pclass", "sex", "age", "sibsp", "parch"]


@dataclass(frozen=True, eq=False)  # eq=False: == on arrays would not give a bool
class TabularData:
    """Features x (N, F) float32, targets y, and the names of the columns and classes."""

    x: np.ndarray
    y: np.ndarray
    feature_names: list[str]
    target_names: list[str]

    def __len__(self) -> int:
        return len(self.x)


def _data_file(name: str) -> Traversable:
    """The shipped file `name`, found inside the installed package (editable, wheel or zip)."""
    return resources.files(__package__).joinpath("data", name)


# ---- Titanic ------------------------------------------------------------------------------------


def _read_titanic() -> dict[str, np.ndarray]:
    """The raw table as float64 columns; missing ages are NaN, sex is 0 = female, 1 = male."""
    # csv wants newline="", which Traversable.open's declared text mode does not take: decode the
    # bytes here instead (what Path.open("r", newline="") does)
    with (
        _data_file(_TITANIC_FILE).open("rb") as raw,
        io.TextIOWrapper(raw, encoding="utf-8", newline="") as f,
    ):
        reader = csv.reader(f)
        header = next(reader)
        if header != _TITANIC_COLUMNS:
            raise ValueError(
                f"titanic: {_TITANIC_FILE} has columns {header}, not {_TITANIC_COLUMNS}"
            )
        rows = list(reader)
    sex_code = {"female": 0.0, "male": 1.0}
    columns = {
        "survived": [float(r[0]) for r in rows],
        "pclass": [float(r[1]) for r in rows],
        "sex": [sex_code[r[2]] for r in rows],
        "age": [float(r[3]) if r[3] else math.nan for r in rows],
        "sibsp": [float(r[4]) for r in rows],
        "parch": [float(r[5]) for r in rows],
    }
    return {name: np.asarray(values, dtype=np.float64) for name, values in columns.items()}


def _standardise(column: np.ndarray) -> np.ndarray:
    """(column - mean) / std over the whole column (population std, ddof=0)."""
    std = column.std()
    return (column - column.mean()) / (std if std > 0 else 1.0)


def titanic(preprocess: bool = True) -> TabularData:
    """The 1,309 Titanic passengers (titanic3 via vcdExtra::Titanicp); y = survived, shape (N, 1).

    preprocess=True: 8 features, no NaN: pclass one-hot (3), sex one-hot (female, male), then age,
    sibsp, parch standardised with the mean and std of the whole table; missing ages (263) are
    first filled with the median of the known ages (28). preprocess=False: the raw columns pclass
    (1, 2, 3), sex (0 = female, 1 = male), age (NaN where missing), sibsp, parch.
    """
    cols = _read_titanic()
    y = cols["survived"].astype(np.float32).reshape(-1, 1)
    target_names = ["died", "survived"]
    if not preprocess:
        names = ["pclass", "sex", "age", "sibsp", "parch"]
        x = np.stack([cols[n] for n in names], axis=1).astype(np.float32)
        return TabularData(x, y, names, target_names)

    age = cols["age"].copy()
    missing = np.isnan(age)
    age[missing] = np.median(age[~missing])
    pclass = cols["pclass"].astype(np.int64)
    parts = [(pclass == k).astype(np.float64) for k in (1, 2, 3)]
    parts += [(cols["sex"] == 0).astype(np.float64), (cols["sex"] == 1).astype(np.float64)]
    parts += [_standardise(age), _standardise(cols["sibsp"]), _standardise(cols["parch"])]
    names = ["pclass_1", "pclass_2", "pclass_3", "sex_female", "sex_male", "age", "sibsp", "parch"]
    x = np.stack(parts, axis=1).astype(np.float32)
    return TabularData(x, y, names, target_names)


# ---- digits -------------------------------------------------------------------------------------


def digits() -> TabularData:
    """1,797 handwritten digits, 8x8: x (N, 64) float32 in [0, 1] (pixel / 16), y int64 labels 0..9.

    Rows of x are images in row-major order: x.reshape(-1, 1, 8, 8) gives (N, C, H, W) for Conv2d.
    """
    with _data_file(_DIGITS_FILE).open("rb") as raw, gzip.open(raw, "rt", encoding="ascii") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float64, ndmin=2)
    if table.shape[1] != 65:
        raise ValueError(f"digits: {_DIGITS_FILE} has {table.shape[1]} columns, expected 64 + 1")
    x = (table[:, :64] / 16.0).astype(np.float32)
    y = table[:, 64].astype(np.int64)
    names = [f"pixel_{r}_{c}" for r in range(8) for c in range(8)]
    return TabularData(x, y, names, [str(d) for d in range(10)])


# ---- text ---------------------------------------------------------------------------------------


@functools.cache  # the novel is immutable str; decompressing it once per process is enough
def _read_text() -> str:
    with _data_file(_TEXT_FILE).open("rb") as raw:
        return gzip.decompress(raw.read()).decode("utf-8")


def text_corpus(max_chars: int | None = None) -> str:
    """The shipped novel (about 685,000 characters, ASCII) for character-level language models."""
    if max_chars is not None and (isinstance(max_chars, bool) or max_chars < 0):
        raise ValueError(f"text_corpus: max_chars must be None or >= 0, got {max_chars!r}")
    text = _read_text()
    return text if max_chars is None else text[:max_chars]


def text_source() -> str:
    """One line naming the text that text_corpus() returns and where it came from."""
    return (
        'Jane Austen, "Pride and Prejudice" (1813; public domain), Project Gutenberg eBook #1342 '
        "as shipped in the janeaustenr 1.0.0 R package (Debian r-cran-janeaustenr 1.0.0-1)"
    )


# ---- splitting ----------------------------------------------------------------------------------


def _labels_for_strata(y: np.ndarray) -> np.ndarray:
    """Class labels to stratify on: y (N,), y (N, 1), or one-hot y (N, C) (argmax)."""
    if y.ndim == 1:
        return y
    if y.ndim == 2 and y.shape[1] == 1:
        return y[:, 0]
    if y.ndim == 2:
        return y.argmax(axis=1)
    raise ValueError(f"train_test_split: cannot stratify on y of shape {y.shape}")


def _stratified_test_indices(
    labels: np.ndarray, n_test: int, rng: np.random.Generator
) -> np.ndarray:
    """n_test indices with each class's share as close to its share of the whole as counts allow."""
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    quota = counts * (n_test / len(labels))
    take = np.floor(quota).astype(np.int64)
    # largest remainders get the seats that flooring left over; ties go to the earlier class
    order = np.argsort(-(quota - take), kind="stable")
    take[order[: n_test - int(take.sum())]] += 1
    chosen = []
    for k in range(len(classes)):
        members = np.flatnonzero(inverse == k)
        chosen.append(rng.permutation(members)[: take[k]])
    return np.concatenate(chosen)


def train_test_split(
    x: np.ndarray,
    y: np.ndarray,
    test_fraction: float = 0.2,
    seed: int | None = 0,
    stratify: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle rows and split them into (x_train, x_test, y_train, y_test); same seed, same split.

    The test set has ceil(N * test_fraction) rows (at least 1, at most N - 1). stratify=True keeps
    each class's share of y (labels, (N, 1) labels or one-hot rows) in both parts.
    """
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim == 0 or y.ndim == 0:
        raise ValueError("train_test_split: x and y must have a first (row) dimension")
    if len(x) != len(y):
        raise ValueError(
            f"train_test_split: x has {len(x)} rows (shape {x.shape}) but y has {len(y)} "
            f"(shape {y.shape})"
        )
    try:
        fraction = float(test_fraction)
    except (TypeError, ValueError):
        fraction = math.nan  # reported just below, like any other value outside (0, 1)
    if isinstance(test_fraction, bool) or not 0.0 < fraction < 1.0:
        raise ValueError(
            "train_test_split: test_fraction must be strictly between 0 and 1, "
            f"got {test_fraction!r}"
        )
    n = len(x)
    if n < 2:
        raise ValueError(f"train_test_split: need at least 2 rows to split, got {n}")
    # the tolerance keeps float noise from rounding up: 10 * 0.3 is 3.0000000000000004
    n_test = min(max(math.ceil(n * fraction - 1e-9), 1), n - 1)
    rng = np.random.default_rng(seed)
    if stratify:
        test = _stratified_test_indices(_labels_for_strata(y), n_test, rng)
        is_test = np.zeros(n, dtype=bool)
        is_test[test] = True
        train = rng.permutation(np.flatnonzero(~is_test))
        test = rng.permutation(test)  # mix the classes, which were picked one after another
    else:
        perm = rng.permutation(n)
        test, train = perm[:n_test], perm[n_test:]
    return x[train], x[test], y[train], y[test]
