"""Size and build time of each export of one job's result, and the GLB checked by the Khronos glTF validator.

    python bench/exports.py                      # reconstructs examples/spot with fusion's defaults first
    python bench/exports.py --glb path/model.glb # or converts a GLB you already have
    python bench/exports.py --validator DIR      # DIR holds node_modules/gltf-validator (npm install gltf-validator)

Each format is built --repeat times from the GLB (as the server does on a first request: load, convert, write)
and the fastest time is reported, so other load on the machine counts as little as it can.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from worker.recon.exports import FORMATS, load_result, write_export

VALIDATE = """
const validator = require(process.argv[1] + '/node_modules/gltf-validator');
const bytes = new Uint8Array(require('fs').readFileSync(process.argv[2]));
validator.validateBytes(bytes).then(report => console.log(JSON.stringify(report.issues)));
"""


def spot_result(folder: Path) -> Path:
    """Reconstruct the shipped Spot example with fusion's default options; its GLB."""
    from worker.recon.fusion import reconstruct_fusion
    from worker.recon.inputs import load_inputs
    from worker.recon.rig import SLOT_NAMES

    spot = REPO / "examples" / "spot"
    inputs = load_inputs([spot / f"view_{i}_{slot}.png" for i, slot in enumerate(SLOT_NAMES)],
                         [spot / f"depth_{i}_{slot}.png" for i, slot in enumerate(SLOT_NAMES)], None)
    reconstruct_fusion(inputs, folder / "model.glb", lambda fraction, stage=None: None)
    return folder / "model.glb"


def measure(glb: Path, folder: Path, repeat: int) -> list[dict]:
    mesh = load_result(glb)
    rows = [{"format": "glb", "bytes": glb.stat().st_size, "build_s": 0.0}]
    for fmt in FORMATS[1:]:
        times = []
        for attempt in range(repeat):
            out = folder / f"export-{attempt}.{fmt}"
            started = time.perf_counter()
            write_export(glb, fmt, out)
            times.append(time.perf_counter() - started)
        rows.append({"format": fmt, "bytes": out.stat().st_size, "build_s": round(min(times), 3)})
    for row in rows:
        row["vertices"], row["triangles"] = len(mesh.vertices), len(mesh.faces)
    return rows


def validate(glb: Path, validator: Path | None) -> dict | None:
    """The Khronos validator's issue counts for the GLB, or None when no validator was given."""
    if validator is None:
        return None
    answer = subprocess.run(["node", "-e", VALIDATE, str(validator.resolve()), str(glb)], capture_output=True,
                            text=True, check=True, timeout=300)
    issues = json.loads(answer.stdout)
    return {key: issues[key] for key in ("numErrors", "numWarnings", "numInfos", "numHints")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--glb", type=Path, help="a result GLB (default: reconstruct examples/spot)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--validator", type=Path, help="folder with node_modules/gltf-validator")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="exports-") as scratch:
        folder = Path(scratch)
        glb = args.glb or spot_result(folder)
        rows = measure(glb, folder, args.repeat)
        for row in rows:
            print(f"{row['format']:5} {row['bytes'] / 1e6:8.2f} MB  {row['build_s']:6.2f} s  "
                  f"({row['vertices']} vertices, {row['triangles']} triangles)")
        print(json.dumps({"exports": rows, "glb_validation": validate(glb, args.validator)}))


if __name__ == "__main__":
    main()
