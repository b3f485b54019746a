"""Worst-case cost of one job: the largest input a default install accepts, with the heaviest options.

Each row runs one model in a fresh process (so its peak RSS is its own) on the Spot example
enlarged to RECON_MAX_PIXELS (1024x1024 by default) and prints wall time and peak memory
against the public-demo targets: under 2 GB and a few minutes on 2 cores.

    python bench/worst_case.py [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.inputs import EXAMPLES, enlarged  # noqa: E402
from worker.config import load_settings  # noqa: E402
from worker.jobs.models import MODELS  # noqa: E402

TARGET_RSS_MB = 2048
TARGET_WALL_S = 300
HEAVIEST = {
    "fusion": {"grid_resolution": 512, "target_triangles": 5_000_000, "max_error_ppm": 0, "texture_size": 4096},
    "nvdiffrec": {"iterations": 5000, "render_resolution": 2048, "texture_size": 4096},
}

RUN_ONE = """
import json, resource, sys, time
from pathlib import Path
from worker.config import settings
from worker.recon.devices import set_threads
from worker.jobs.models import MODELS, get_reconstructor
from worker.recon.inputs import load_inputs
from worker.jobs.files import JobFiles
set_threads(settings.torch_threads)
model, options, inputs_dir, out_dir = sys.argv[1], json.loads(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
began = time.perf_counter()
options, notes = MODELS[model].fit_to_device(options, "cpu")  # as the job runner does
out_dir.mkdir(parents=True, exist_ok=True)
report = get_reconstructor(model, settings)(load_inputs(*JobFiles(inputs_dir.parent).stored_inputs()), out_dir / "model.glb",
                                  lambda f, s: None, options, "cpu")
print(json.dumps({"wall_s": time.perf_counter() - began, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "triangles": report["mesh"]["triangles"], "ran_with": options, "warnings": notes + report["warnings"]}))
"""


def stored_inputs(folder: Path, size: int) -> Path:
    """The enlarged example under the names a job's inputs folder uses."""
    source = enlarged(EXAMPLES / "spot", folder / "enlarged", size)
    inputs = folder / "inputs"
    inputs.mkdir()
    for path in source.glob("*.png"):
        kind, index = path.stem.split("_")[:2]
        (inputs / f"{kind}_{index}.png").write_bytes(path.read_bytes())
    return inputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    settings = load_settings()
    size = math.isqrt(settings.max_pixels)
    print(f"inputs {size}x{size}, {args.threads} torch threads; targets: peak RSS < {TARGET_RSS_MB} MB, "
          f"wall < {TARGET_WALL_S} s")
    print("| model | asked | ran with (CPU ceilings) | wall s | peak RSS MB | triangles | verdict |\n"
          "|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        inputs = stored_inputs(Path(tmp), size)
        for model, options in HEAVIEST.items():
            options = MODELS[model].resolve_options(options)
            out = Path(tmp) / model
            out.mkdir()
            env = {**os.environ, "RECON_TORCH_THREADS": str(args.threads)}
            began = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", RUN_ONE, model, json.dumps(options), str(inputs), str(out)],
                                  cwd=ROOT, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                print(f"| {model} | {options} | | {time.perf_counter() - began:.1f} | | | failed: "
                      f"{done.stderr.strip().splitlines()[-1]} |")
                continue
            row = json.loads(done.stdout.strip().splitlines()[-1])
            ok = row["rss_mb"] < TARGET_RSS_MB and row["wall_s"] < TARGET_WALL_S
            print(f"| {model} | {json.dumps(options)} | {json.dumps(row['ran_with'])} | {row['wall_s']:.1f} | "
                  f"{row['rss_mb']:.0f} | {row['triangles']} | {'ok' if ok else 'MISSED'} |")


if __name__ == "__main__":
    main()
