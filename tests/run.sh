#!/usr/bin/env bash
# Installs everything the tests need (Debian's redis-server and chromium, the Python packages), then runs them.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v chromium >/dev/null || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update
  $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi

python3 -m pip install -q -r requirements-dev.txt
# Two test processes share two cores (tests/conftest.py): each computes on one thread, as the servers and workers
# they start do. With torch's default two threads each, OpenMP spun: 22 min of CPU against 13, and test_runner's
# in-process job took 67 s against 7 s.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1
python3 -m pytest -n 2 --dist loadgroup --no-loadscope-reorder "$@"  # two processes: tests/conftest.py
