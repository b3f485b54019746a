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
python3 -m pytest "$@"
