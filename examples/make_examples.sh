#!/usr/bin/env bash
# Rebuilds the sample inputs in examples/ from spot.obj and fandisk.obj in MESHES_DIR with the project's own renderer
# (python -m worker.recon.render_inputs, 256x256, 16-bit depth, default cube6 rig).
set -euo pipefail
cd "$(dirname "$0")/.."
meshes="${1:?usage: bash examples/make_examples.sh MESHES_DIR (a folder with spot.obj and fandisk.obj)}"
for name in spot fandisk; do
  scratch="$(mktemp -d)"
  python -m worker.recon.render_inputs "$meshes/$name.obj" "$scratch" --res 256
  rm -rf "examples/$name"
  mkdir -p "examples/$name"
  cp "$scratch"/view_*.png "$scratch"/depth_*.png "examples/$name/"
  rm -rf "$scratch"
done
