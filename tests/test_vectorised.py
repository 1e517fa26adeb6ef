"""Convolutions and pooling run no Python loop over pixels or images, and recurrent layers loop
over time only: the number of Python lines executed in their modules (forward and backward) must
not change with the batch or image size, and must grow linearly with the sequence length."""

from __future__ import annotations

import sys
from pathlib import Path

import gnn
import gnn.functional as F
from gnn import nn

ROOT = Path(gnn.__file__).parent
WATCHED = {
    str(ROOT / "ops" / "conv.py"), str(ROOT / "nn" / "conv.py"), str(ROOT / "nn" / "pooling.py"),
    str(ROOT / "ops" / "rnn.py"), str(ROOT / "nn" / "rnn.py"),
    str(ROOT / "ops" / "batch_norm.py"), str(ROOT / "nn" / "batchnorm.py"),
}  # fmt: skip


def _lines(fn, *args: object) -> int:
    """Python lines executed in the watched files while fn(*args) runs, after one untraced run
    (so caches such as the recurrent layers' zero state are warm: the steady state is counted)."""
    fn(*args)
    count = 0

    def tracer(frame, event, arg):
        nonlocal count
        if frame.f_code.co_filename not in WATCHED:
            return None
        if event == "line":
            count += 1
        return tracer

    old = sys.gettrace()
    sys.settrace(tracer)
    try:
        fn(*args)
    finally:
        sys.settrace(old)
    return count


def _cnn_step(batch: int, size: int) -> None:
    gnn.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, stride=2, dilation=2, groups=2, bias=False),
        nn.ConvTranspose2d(6, 2, 3, stride=2, output_padding=1),
        nn.AvgPool2d(3, stride=1, padding=1),
        nn.MaxPool2d(3, stride=1),  # overlapping windows
    )
    x = gnn.randn(batch, 3, size, size, requires_grad=True)
    model(x).sum().backward()


def test_convolutions_and_pools_do_not_loop_over_pixels_or_images() -> None:
    small = _lines(_cnn_step, 1, 12)
    assert small > 0
    assert _lines(_cnn_step, 6, 12) == small  # batch
    assert _lines(_cnn_step, 2, 29) == small  # image size


def _rnn_step(mode: str, t_len: int, batch: int, hidden: int) -> None:
    gnn.manual_seed(0)
    layer = getattr(nn, mode)(3, hidden, num_layers=2, bidirectional=True, batch_first=True)
    x = gnn.randn(batch, t_len, 3, requires_grad=True)
    out = layer(x)[0]
    F.mse_loss(out, gnn.zeros(*out.shape)).backward()


def test_recurrent_layers_loop_over_time_only() -> None:
    for mode in ("RNN", "LSTM", "GRU"):
        base = _lines(_rnn_step, mode, 4, 2, 5)
        assert _lines(_rnn_step, mode, 4, 5, 5) == base, mode
        assert _lines(_rnn_step, mode, 4, 9, 5) == _lines(_rnn_step, mode, 4, 23, 5), mode
        assert _lines(_rnn_step, mode, 4, 2, 17) == base, mode  # hidden size
        longer = _lines(_rnn_step, mode, 8, 2, 5)
        longest = _lines(_rnn_step, mode, 12, 2, 5)
        assert longest - longer == longer - base > 0, mode  # linear in the sequence length
