"""The result in other formats, from the page: pick OBJ, PLY, STL or USDZ, then download it.

Self-contained so the page's layout only places it: the choice appears when the
viewer shows a result and goes when the viewer is cleared; a format is made on
first request (the job service keeps it with the job) and served from one copy.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from worker.errors import ReconError
from worker.jobs.files import download_name

from .input_notes import error_sentence
from .served_results import ServedResults
from .studio import Studio

FORMAT_CHOICES = [
    ("OBJ: a zip of mesh, material and texture", "obj"),
    ("PLY: mesh with vertex colours", "ply"),
    ("STL: geometry only", "stl"),
    ("USDZ: textured, for AR and USD tools", "usdz"),
]
PRIVATE = {"api_visibility": "private", "show_progress": "minimal"}


@dataclass
class FormatDownloads:
    choice: gr.Dropdown
    button: gr.DownloadButton

    def wire(self, studio: Studio, results: ServedResults, viewer: gr.Model3D, active_job: gr.State) -> None:
        """Show the choice with a result; on a pick, make that format and offer it as a download."""

        def follow_viewer(shown: str | None) -> tuple[dict, dict]:
            return gr.update(visible=bool(shown), value=None), gr.update(visible=False, value=None)

        def prepare(fmt: str | None, job_id: str) -> dict:
            if not fmt or not job_id:
                return gr.update(visible=False, value=None)
            try:
                path = studio.service.result_file(studio.job(job_id).job_id, fmt)
            except ReconError as error:
                raise gr.Error(error_sentence(error), print_exception=False) from None
            served = results.serve(path, download_name(job_id, fmt))
            return gr.update(value=str(served), label=f"Download {fmt.upper()}", visible=True)

        viewer.change(follow_viewer, [viewer], [self.choice, self.button], **PRIVATE)
        self.choice.input(prepare, [self.choice, active_job], [self.button], **PRIVATE)


def format_downloads() -> FormatDownloads:
    """The choice and its download button, hidden until a result is shown; call inside the result column."""
    with gr.Row(equal_height=True, elem_id="format-row"):
        choice = gr.Dropdown(FORMAT_CHOICES, value=None, label="Other formats", visible=False, scale=3,
                             elem_id="format-choice")
        button = gr.DownloadButton("Download", visible=False, scale=1, elem_id="download-format")
    return FormatDownloads(choice, button)
