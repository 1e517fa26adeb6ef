#!/usr/bin/env bash
# Everything CI checks, in order: lint, format, the core line budget (ci/core_lines.py), the
# type check (mypy), kernel compilation, the test suite, and where no GPU is visible the
# gpu-marked tests once more on the fake CuPy of tests/fake_gpu; then the kernels themselves on
# the CPU emulator (ci/emulate.sh) and its mutation check.
# Run from the repository root inside an environment with gnn[dev] installed.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== ruff check"
ruff check .
echo "== ruff format --check"
ruff format --check .
echo "== core line budget (docs/architecture.md: target 3,000; the ceiling is today's count)"
python ci/core_lines.py --max 3861
echo "== mypy over gnn/ (configuration and per-module exceptions: pyproject.toml [tool.mypy])"
mypy
echo "== nvcc compile check of kernels/*.cu"
bash ci/check_kernels.sh
echo "== pytest"
bash ci/test.sh "$@"
echo "== pytest -m gpu on the fake CuPy (tests/fake_gpu: the Python side of GPU support)"
if python -c "import gnn, sys; sys.exit(not gnn.cuda_available())"; then
    echo "a CUDA device is visible: the gpu tests ran on it above"
else
    GNN_FAKE_CUDA=1 bash ci/test.sh -m gpu -p no:cacheprovider
fi
echo "== the CUDA kernels executed on the CPU emulator (tests/cuda_cpu): plain, ASan+UBSan, TSan"
bash ci/emulate.sh
echo "== kernel mutants: each must be caught by the emulated tests or a sanitizer"
bash ci/emulate.sh --mutants
