#!/usr/bin/env bash
# Rebuilds the sample inputs in examples/ from ../shared/meshes with the project's own renderer
# (python -m worker.recon.render_inputs, 256x256, 16-bit depth, default cube6 rig).
set -euo pipefail
cd "$(dirname "$0")/.."
meshes="${1:-../shared/meshes}"
for name in spot fandisk; do
  scratch="$(mktemp -d)"
  python -m worker.recon.render_inputs "$meshes/$name.obj" "$scratch" --res 256
  rm -rf "examples/$name"
  mkdir -p "examples/$name"
  cp "$scratch"/view_*.png "$scratch"/depth_*.png "examples/$name/"
  rm -rf "$scratch"
done
