"""GradScaler under gnn.distributed: an inf on one rank makes every rank skip the step and back
off the scale together (the found-inf flag is max-reduced over the ranks)."""

from __future__ import annotations

import json

from test_distributed import needs_mpi, ok, ranks

SCRIPT = """
import json, sys
import numpy as np
import gnn
import gnn.distributed as dist

dist.init_process_group("mpi")
rank = dist.get_rank()
p = gnn.nn.Parameter(gnn.ones(3))
opt = gnn.optim.SGD([p], lr=0.1)
scaler = gnn.amp.GradScaler("cpu", init_scale=4.0, growth_interval=1)
scales, values = [], []
for step in range(4):
    opt.zero_grad()
    scaler.scale((p * 2).sum()).backward()
    if step == 1 and rank == 1:  # an overflow on rank 1 only
        p.grad.array[0] = float("inf")
    scaler.step(opt)
    scaler.update()
    scales.append(scaler.get_scale())
    values.append(float(p.numpy()[1]))
# one file per rank: lines printed by two ranks can interleave on the launcher's stdout
with open(f"{sys.argv[1]}/rank{rank}.json", "w") as f:
    json.dump({"rank": rank, "scales": scales, "values": values}, f)
dist.destroy_process_group()
"""


@needs_mpi
def test_found_inf_is_agreed_by_all_ranks(tmp_path) -> None:
    script = tmp_path / "amp_inf.py"
    script.write_text(SCRIPT)
    ok(ranks(2, str(script), str(tmp_path)))
    runs = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [r["rank"] for r in runs] == [0, 1]
    for r in runs:
        # grew after step 0, backed off at step 1 (rank 1's inf), grew again after 2 and 3
        assert r["scales"] == [8.0, 4.0, 8.0, 16.0], r
        # SGD on a gradient of 2: steps 0, 2 and 3 move the parameter, step 1 does not
        assert max(abs(a - b) for a, b in zip(r["values"], [0.8, 0.8, 0.6, 0.4])) < 1e-6, r
