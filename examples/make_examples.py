"""Rebuild the shipped examples from the meshes in examples/meshes/ with the project's own renderer.

    python examples/make_examples.py            # every example in catalogue.json
    python examples/make_examples.py spot cow   # only these

Each example folder gets the 12 inputs at 256 x 256 (`python -m worker.recon.render_inputs`, with the
example's turn, depth bits and rig), cameras.json only when the rig is not the default cube6, and
thumbnail.png: the front view cropped to the object, which the page shows.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

EXAMPLES = Path(__file__).resolve().parent
REPO = EXAMPLES.parent
SIZE = 256
THUMBNAIL_SIZE = 128
THUMBNAIL_MARGIN = 0.08  # of the cropped square, on each side


def thumbnail(front_view: Path) -> Image.Image:
    """The front view cut to a square around the object (transparent elsewhere), THUMBNAIL_SIZE wide."""
    rgba = Image.open(front_view).convert("RGBA")
    rows, cols = np.nonzero(np.asarray(rgba)[..., 3])
    centre_row, centre_col = (rows.min() + rows.max()) / 2, (cols.min() + cols.max()) / 2
    half = max(rows.max() - rows.min(), cols.max() - cols.min()) / 2 / (1 - 2 * THUMBNAIL_MARGIN)
    box = tuple(round(v) for v in (centre_col - half, centre_row - half, centre_col + half, centre_row + half))
    return rgba.crop(box).resize((THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.Resampling.LANCZOS)


def build(entry: dict) -> Path:
    """Render one catalogue entry into examples/<name>/, replacing what was there."""
    folder = EXAMPLES / entry["name"]
    with tempfile.TemporaryDirectory() as scratch:
        command = [sys.executable, "-m", "worker.recon.render_inputs", str(EXAMPLES / entry["mesh"]), scratch,
                   "--depth-bits", str(entry["depth_bits"]), "--turn", str(entry["turn"])]
        command += ["--res", str(SIZE)] if entry["rig"] == "cube6" else ["--rig", str(EXAMPLES / entry["rig"])]
        subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        keep = sorted(Path(scratch).glob("view_*.png")) + sorted(Path(scratch).glob("depth_*.png"))
        if entry["rig"] != "cube6":
            keep.append(Path(scratch) / "cameras.json")
        for path in keep:
            shutil.copy(path, folder / path.name)
    thumbnail(folder / "view_0_front.png").save(folder / "thumbnail.png", optimize=True)
    return folder


def main(names: list[str]) -> int:
    catalogue = json.loads((EXAMPLES / "catalogue.json").read_text())
    unknown = set(names) - {entry["name"] for entry in catalogue}
    if unknown:
        print(f"not in catalogue.json: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    for entry in catalogue:
        if not names or entry["name"] in names:
            print(build(entry).relative_to(REPO))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
