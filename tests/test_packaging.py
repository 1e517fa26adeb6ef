"""The wheel ships the CUDA sources and gnn finds them when installed (no GPU needed)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("setuptools")
    out = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
           "-w", str(out), str(ROOT)]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        pytest.fail(f"building the wheel failed:\n{result.stdout}\n{result.stderr}")
    wheels = list(out.glob("gnn-*.whl"))
    assert len(wheels) == 1
    return wheels[0]


def test_wheel_contains_every_kernel(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = sorted(p.name for p in (ROOT / "kernels").glob("*.cu*"))  # .cu and .cuh headers
    assert any(name.endswith(".cu") for name in sources), "kernels/ has no .cu files"
    for name in sources:
        assert f"gnn/_kernels/{name}" in names


def test_installed_wheel_finds_its_kernels(wheel: Path, tmp_path: Path) -> None:
    # Unpacked away from the source tree, gnn must find gnn/_kernels, not kernels/ of a checkout.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = "import gnn.backend.kernels as k; print(k.kernel_dir())"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    found = Path(result.stdout.strip())
    assert found == site / "gnn" / "_kernels"
    assert (found / "sigmoid.cu").is_file()


def test_source_checkout_finds_kernels_dir() -> None:
    import gnn.backend.kernels as kernels

    assert kernels.kernel_dir() == ROOT / "kernels"
