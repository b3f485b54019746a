"""The shipped examples on the page: a table of thumbnails and names; one click fills both galleries.

examples/catalogue.json lists them and examples/make_examples.py builds each folder (12 inputs, a
thumbnail, and cameras.json when the example brings its own rig). An example with a cameras.json fills
that input too; one without clears it, so a click always leaves a consistent set of inputs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from worker.recon.rig import SLOT_NAMES

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
CATALOGUE = "catalogue.json"
THUMBNAIL = "thumbnail.png"
CAMERAS = "cameras.json"


@dataclass(frozen=True)
class ShippedExample:
    """One folder of examples/ as the page offers it."""

    name: str
    label: str
    folder: Path

    def gallery(self, kind: str) -> list[tuple[str, str]]:
        """The folder's `kind` ("view" or "depth") PNGs in slot order, captioned with their slots."""
        return [(str(self.folder / f"{kind}_{index}_{slot}.png"), slot) for index, slot in enumerate(SLOT_NAMES)]

    @property
    def thumbnail(self) -> Path:
        return self.folder / THUMBNAIL

    @property
    def cameras(self) -> Path | None:
        path = self.folder / CAMERAS
        return path if path.is_file() else None


def shipped_examples(examples_dir: Path = EXAMPLES_DIR) -> list[ShippedExample]:
    """The catalogue's examples whose folder is present, in catalogue order (none without a catalogue)."""
    catalogue = examples_dir / CATALOGUE
    if not catalogue.is_file():
        return []
    entries = json.loads(catalogue.read_text())
    found = [ShippedExample(entry["name"], entry["label"], examples_dir / entry["name"]) for entry in entries]
    return [example for example in found if example.folder.is_dir()]


def example_rows(examples: list[ShippedExample]) -> list[list]:
    """One row per example: thumbnail, name, views, depth renders, cameras.json (None clears the input)."""
    return [
        [str(example.thumbnail), example.label, example.gallery("view"), example.gallery("depth"),
         None if example.cameras is None else str(example.cameras)]
        for example in examples
    ]


def examples_table(views: gr.Gallery, depths: gr.Gallery, cameras: gr.File) -> gr.Examples | None:
    """The examples as a table of thumbnails and names (the galleries and cameras.json stay hidden columns)."""
    examples = shipped_examples()
    if not examples:
        return None
    thumbnail = gr.Image(visible=False, type="filepath", label="Example", interactive=False)
    name = gr.Textbox(visible=False, label="What it shows", interactive=False)
    return gr.Examples(
        example_rows(examples), inputs=[thumbnail, name, views, depths, cameras], visible_columns=[0, 1],
        label="Examples: one click fills both galleries", elem_id="examples", api_visibility="private",
    )
