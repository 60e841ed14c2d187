#!/usr/bin/env bash
# The GPU check in one line (see benchmarks/gpu_check.py): run from the repository root on a machine
# with a CUDA GPU; prints one table (CUDA tests, zoo vs open_clip throughput and MFU) in < 8 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD:$PWD/plugins${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python}" benchmarks/gpu_check.py "$@"
