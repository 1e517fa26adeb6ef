#!/usr/bin/env bash
# The test suite. GPU tests carry the `gpu` marker and skip themselves without a CUDA device.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pytest -q "$@"
