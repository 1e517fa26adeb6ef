"""Rank 1 raises while rank 0 waits in a collective: the job must end, not hang.

usage: fail_one_rank.py
"""

from __future__ import annotations

import gnn
import gnn.distributed as dist

dist.init_process_group("mpi")
if dist.get_rank() == 1:
    raise ValueError("planted failure on rank 1")
dist.all_reduce(gnn.ones(3))  # rank 0 waits here for a partner that never comes
print("rank 0 got past the collective")
