"""Keras fit under mpiexec, run by tests/test_distributed.py on 1 rank and on 2.

usage: fit_ranks.py OUT_DIR

fit joins the process group by itself (no init_process_group here). 97 training samples in
batches of 16 end in a batch of one: on 2 ranks one rank has no sample of it. Writes
OUT_DIR/fit_<world>_<rank>.npz (parameters, history, BatchNorm buffers) and
OUT_DIR/fit_<world>_<rank>.json (history, which checkpoints this rank's ModelCheckpoint wrote).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

import gnn
import gnn.distributed as dist
from gnn import nn
from gnn.layers import Dense, l2
from gnn.train.callbacks import CSVLogger, ModelCheckpoint


def main(out: Path) -> None:
    gnn.set_default_dtype("float64")
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(97, 5)), rng.integers(0, 3, size=97)
    xv, yv = rng.normal(size=(20, 5)), rng.integers(0, 3, size=20)

    gnn.manual_seed(0)
    model = gnn.Sequential()
    model.add(Dense(16, activation="relu", input_shape=(5,), kernel_regularizer=l2(1e-3)))
    model.add(Dense(3, activation="softmax"))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    world = dist.launcher_world_size()
    ckpt = ModelCheckpoint(str(out / f"w{world}-ckpt-{{epoch}}.safetensors"), monitor="val_loss")
    csv = CSVLogger(str(out / f"w{world}-log.csv"))
    history = model.fit(
        x, y, batch_size=16, epochs=3, validation_data=(xv, yv), callbacks=[ckpt, csv], verbose=2
    )
    rank, world = dist.get_rank(), dist.get_world_size()

    # BatchNorm: the running statistics must agree on every rank after fit
    gnn.manual_seed(1)
    bn = gnn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    bn.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    bn.fit(x[:96], y[:96], batch_size=16, epochs=2, verbose=0)

    arrays = {f"param.{k}": p.numpy() for k, p in model.named_parameters()}
    arrays.update({f"bn.{k}": b.numpy() for k, b in bn.named_buffers()})
    np.savez(out / f"fit_{world}_{rank}.npz", **arrays)
    info = {"history": history.history, "saved": ckpt.saved}
    (out / f"fit_{world}_{rank}.json").write_text(json.dumps(info))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
