"""Random sampling from tensors of probabilities: multinomial."""

from __future__ import annotations

from typing import Any

import numpy as np

from gnn.ops.registry import register
from gnn.tensor import Tensor


@register(method=True, top=True)
def multinomial(
    input: Tensor,  # PyTorch's name
    num_samples: int,
    replacement: bool = False,
    generator: Any = None,
) -> Tensor:
    """Draw category indices with probabilities proportional to the rows of `input` (1-D or 2-D,
    non-negative, not necessarily normalised); int64, shape (..., num_samples).

    Seeded by gnn.manual_seed; the draws are not PyTorch's (their generators differ).
    """
    if generator is not None:
        raise TypeError("multinomial: generator= is not supported; seed with gnn.manual_seed")
    if not isinstance(input, Tensor):
        raise TypeError(f"multinomial: expected a Tensor, got {type(input).__name__}")
    if input.ndim not in (1, 2) or input.shape[-1] == 0:
        raise ValueError(
            f"multinomial: expected a 1-D or 2-D tensor with at least one category, "
            f"got shape {input.shape}"
        )
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"multinomial: num_samples must be an integer >= 1, got {num_samples!r}")
    be, xp = input._be, input._be.xp
    k = input.shape[-1]
    rows = input.array.reshape(-1, k).astype(np.float64)
    # One host read for all the ways a row can be bad (as PyTorch, which also syncs here), and
    # the fewest non-zero probabilities in a row (at most k).
    checks = xp.stack([(~xp.isfinite(rows) | (rows < 0)).any(), (rows > 0).sum(axis=1).min()])
    bad, fewest = (int(v) for v in be.to_numpy(checks))
    if bad:
        raise ValueError("multinomial: probabilities must be finite and non-negative")
    if fewest == 0:
        raise ValueError("multinomial: a row of probabilities sums to zero")
    n_rows = rows.shape[0]
    if not replacement:
        if num_samples > fewest:
            raise ValueError(
                f"multinomial: cannot draw {num_samples} samples without replacement from {k} "
                f"categories: a row has only {fewest} non-zero probabilities"
            )
        # Exponential races: category i arrives at E_i / p_i; the first num_samples to arrive
        # are a draw without replacement with the right probabilities.
        arrival = -xp.log1p(-be.rand((n_rows, k), np.float64))
        positive = rows > 0
        arrival = xp.where(positive, arrival / xp.where(positive, rows, 1.0), np.inf)
        idx = xp.argsort(arrival, axis=1, kind="stable")[:, :num_samples]
    else:
        cdf = xp.cumsum(rows, axis=1)
        cdf /= cdf[:, -1:]
        u = be.rand((n_rows, num_samples), np.float64)
        # One searchsorted for all rows: row r's cdf and draws are shifted by r.
        offset = xp.arange(n_rows, dtype=np.float64)[:, None]
        flat = (cdf + offset).reshape(-1)
        idx = xp.searchsorted(flat, (u + offset).reshape(-1), side="right").reshape(u.shape)
        idx = idx - xp.arange(n_rows)[:, None] * k
        # A draw just below 1 can round past its row's end: take the row's last possible one.
        last = (k - 1) - xp.argmax(rows[:, ::-1] > 0, axis=1)
        idx = xp.minimum(idx, last[:, None])
    out = idx.astype(np.int64).reshape(input.shape[:-1] + (num_samples,))
    return Tensor._make(out, be, False)
