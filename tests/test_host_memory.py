"""gnn.backend.host_memory: glibc's thresholds raised only when asked, and left alone when told."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

glibc_only = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None,
    reason="glibc only",
)


def run(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    clean.pop("GNN_MALLOC_TUNING", None)
    proc = subprocess.run(
        [sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_import_and_cpu_work_leave_the_allocator_alone():
    # process-wide settings are the program's choice: gnn itself never calls mallopt
    code = (
        "import gnn; from gnn.backend import host_memory; "
        "x = gnn.ones(3, requires_grad=True); (x * x).sum().backward(); "
        "print(host_memory.tune_malloc.cache_info().currsize)"
    )
    assert run(code) == "0"  # never called


@glibc_only
def test_tune_malloc_raises_the_thresholds_unless_the_user_says_otherwise():
    code = "from gnn.backend import host_memory; print(host_memory.tune_malloc())"
    assert run(code) == "True"
    assert run(code, GNN_MALLOC_TUNING="0") == "False"
    assert run(code, MALLOC_TRIM_THRESHOLD_="1000000") == "False"  # the user's own tuning stands


@glibc_only
@pytest.mark.parametrize("entry, applied", [("main", "0"), ("command", "1 True")])
def test_the_gnn_command_tunes_its_own_process_and_main_does_not(entry, applied):
    # `gnn ...` owns its process; cli.main() called from another program leaves it alone
    call = "cli.main(['info'])" if entry == "main" else "cli.command()"
    code = (
        "import contextlib, io, sys\n"
        "from gnn import cli\n"
        "from gnn.backend import host_memory\n"
        "sys.argv = ['gnn', 'info']\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    rc = {call}\n"
        "calls = host_memory.tune_malloc.cache_info().currsize\n"
        "print(rc, calls, host_memory.tune_malloc() if calls else '')\n"
    )
    assert run(code) == f"0 {applied}"  # calls made, and the answer of the one that ran
