#!/usr/bin/env bash
# The GPU check in one command, from any folder: bash bench/gpu_check.sh [--out DIR] [--quick] [--parts ...]
# Once, where there is network: python3 bench/gpu_check.py --prepare (then carry .gpu-bundle/ to the GPU box).
set -euo pipefail
export PYTHONUNBUFFERED=1
exec "${PYTHON:-python3}" "$(dirname "$0")/gpu_check.py" "$@"
