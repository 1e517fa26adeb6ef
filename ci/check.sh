#!/usr/bin/env bash
# Everything CI checks, in order: lint, format, kernel compilation, the test suite.
# Run from the repository root inside an environment with gnn[dev] installed.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== ruff check"
ruff check .
echo "== ruff format --check"
ruff format --check .
echo "== nvcc compile check of kernels/*.cu"
bash ci/check_kernels.sh
echo "== pytest"
bash ci/test.sh "$@"
