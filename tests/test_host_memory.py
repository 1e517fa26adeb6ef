"""gnn.backend.host_memory: glibc's thresholds raised once, and left alone when asked."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CHECK = "import gnn; from gnn.backend import host_memory; print(host_memory._applied)"


def run(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    clean.pop("GNN_MALLOC_TUNING", None)
    proc = subprocess.run(
        [sys.executable, "-c", CHECK], env={**clean, **env}, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None,
    reason="glibc only",
)
def test_thresholds_are_raised_on_glibc_unless_the_user_says_otherwise():
    assert run() == "True"
    assert run(GNN_MALLOC_TUNING="0") == "False"
    assert run(MALLOC_TRIM_THRESHOLD_="1000000") == "False"  # the user's own tuning stands
