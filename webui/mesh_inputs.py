"""From a mesh to the 12 inputs, on the page: for whoever has a mesh but no renderer.

The page's section takes an upload of this page (a GLB, OBJ, PLY or zip; read
within bounds by mesh_files), renders the six views and six depth renders with
the project's own renderer (worker.recon.render_inputs) on a chosen rig, and
places them in Gradio's upload folder under their content hash, as uploads are,
so the galleries hand them to Reconstruct through the same upload guard; a zip
of them is offered for download. Each render counts against the client's events
per minute, its bytes against the client's daily bytes and the upload folder's
cap; at most RENDERS_AT_ONCE run at once, each answered within the time limit.
"""

from __future__ import annotations

import tempfile
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
from gradio.processing_utils import save_file_to_cache

from worker.config import Settings
from worker.errors import FileValidationError, ReconError, ServiceBusyError
from worker.jobs.limits import MB, ClientQuotas, DiskBudget
from worker.recon.render_inputs import render_inputs
from worker.recon.rig import PERSPECTIVE, SLOT_NAMES, Camera, DepthEncoding, Rig, cube6_rig

from .fragments import note_html
from .input_notes import ERROR, IDLE, OK, Note
from .mesh_files import ACCEPTED, MeshLimits, read_mesh, refuse
from .studio import Studio
from .upload_guard import UploadPaths

CUBE6, PERSPECTIVE_RIG = "cube6", "perspective"
RIGS = {
    CUBE6: "cube6: six orthographic cameras (the default, no cameras.json)",
    PERSPECTIVE_RIG: "perspective: six 50° pinhole cameras 3.5 units away (with a cameras.json)",
}
RESOLUTIONS = (256, 512)
PERSPECTIVE_DISTANCE = 3.5
PERSPECTIVE_FOV_DEG = 50.0
PERSPECTIVE_DEPTH = DepthEncoding(near=0.5, far=6.0)
RENDERS_PER_MINUTE = 6
RENDERS_AT_ONCE = 2
ZIP_NAME = "mesh-inputs.zip"


def perspective_rig(size: int) -> Rig:
    """INPUT_FORMAT.md's example rig: cube6's six orientations, pinhole cameras 3.5 units out with a 50° view."""
    focal = size / 2 / np.tan(np.radians(PERSPECTIVE_FOV_DEG / 2))
    cameras = []
    for camera in cube6_rig(size).cameras:
        matrix = camera.cam_to_world.copy()
        matrix[:3, 3] = -camera.forward * PERSPECTIVE_DISTANCE
        cameras.append(Camera(PERSPECTIVE, matrix, size, size, focal, focal, size / 2, size / 2))
    return Rig(tuple(cameras), PERSPECTIVE_DEPTH)


def make_rig(name: object, resolution: object) -> Rig:
    """The rig a client chose, or FileValidationError naming `rig` or `resolution` (any client may send anything)."""
    if resolution not in RESOLUTIONS:
        raise FileValidationError("resolution", f"The resolution must be one of {', '.join(map(str, RESOLUTIONS))}.")
    if name == CUBE6:
        return cube6_rig(resolution)
    if name == PERSPECTIVE_RIG:
        return perspective_rig(resolution)
    raise FileValidationError("rig", f"The rig must be one of {', '.join(RIGS)}.")


@dataclass(frozen=True)
class RenderedInputs:
    """The published files (paths inside Gradio's upload folder) and what to tell the user."""

    views: list[str]
    depths: list[str]
    cameras: str | None  # only for a rig other than cube6
    archive: str
    triangles: int
    seconds: float


class MeshInputs:
    """Renders an uploaded mesh into published inputs, within the deployment's bounds."""

    def __init__(self, config: Settings, quotas: ClientQuotas) -> None:
        self.limits = MeshLimits.of(config)
        self.folder = config.upload_folder
        self.uploads = UploadPaths(config.upload_folder, self.limits.max_bytes)
        self.quotas = quotas
        self.disk = DiskBudget(config.upload_folder, config.upload_quota_mb * MB, config.min_free_disk_mb * MB,
                               "uploads")
        self.free = threading.BoundedSemaphore(RENDERS_AT_ONCE)
        self.pool = ThreadPoolExecutor(RENDERS_AT_ONCE, thread_name_prefix="mesh-inputs")

    def render(self, mesh_path: object, rig_name: object, resolution: object, client: str) -> RenderedInputs:
        """Check, count, render and publish; ReconError with a sentence (and the field) for anything refused."""
        if not mesh_path:
            raise refuse("Add a mesh file first (GLB, OBJ, PLY, or a zip of an OBJ with its MTL and textures).")
        if not self.uploads.is_upload(mesh_path):
            raise refuse("The mesh file is not a file uploaded to this page (or it has expired, or it is over "
                         f"{self.limits.max_bytes // MB} MB); add it again.")
        rig = make_rig(rig_name, resolution)
        self.quotas.count_event(client, "mesh renders", RENDERS_PER_MINUTE)
        if not self.free.acquire(blocking=False):
            raise ServiceBusyError("The server is rendering other meshes; try again in a few seconds.",
                                   retry_after=5, status_code=503)
        abandoned = threading.Event()
        started = time.monotonic()
        future = self.pool.submit(self._work, Path(str(mesh_path)), rig, client, abandoned)
        try:
            rendered = future.result(timeout=self.limits.time_limit_s)
        except FutureTimeout:
            abandoned.set()
            raise refuse(f"Rendering the mesh took longer than {self.limits.time_limit_s:g} s; try 256 px or a "
                         "simpler mesh.") from None
        return RenderedInputs(**rendered, seconds=time.monotonic() - started)

    def _work(self, path: Path, rig: Rig, client: str, abandoned: threading.Event) -> dict:
        """Runs in the pool; frees its slot when done, and publishes nothing once the caller stopped waiting. Once
        it has, the rasterizer's next batch of pixels stops the render: a mesh of many image-filling triangles
        would otherwise hold the slot for hours after its refusal."""

        def still_wanted() -> None:
            if abandoned.is_set():
                raise TimeoutError("the page stopped waiting for this render")

        try:
            mesh = read_mesh(path, self.limits)
            with tempfile.TemporaryDirectory(prefix="mesh-inputs-") as staging:
                written = render_inputs(mesh, Path(staging) / "inputs", rig=rig, on_chunk=still_wanted)
                files = [file for file in written if file.suffix in (".png", ".json")]
                archive = _zip(files, Path(staging) / ZIP_NAME)
                if abandoned.is_set():
                    return {}
                nbytes = sum(file.stat().st_size for file in files + [archive])
                self.disk.reserve(nbytes)
                self.quotas.count_bytes(client, nbytes)
                published = {file.name: save_file_to_cache(file, str(self.folder)) for file in files + [archive]}
            return {
                "views": [published[f"view_{index}_{slot}.png"] for index, slot in enumerate(SLOT_NAMES)],
                "depths": [published[f"depth_{index}_{slot}.png"] for index, slot in enumerate(SLOT_NAMES)],
                "cameras": None if rig.cameras[0].is_ortho else published["cameras.json"],  # cube6 needs none
                "archive": published[ZIP_NAME],
                "triangles": len(mesh.faces),
            }
        finally:
            self.free.release()


def _zip(files: list[Path], target: Path) -> Path:
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for file in files:
            archive.write(file, file.name)
    return target


def _done_note(rendered: RenderedInputs, rig_name: str, resolution: int) -> Note:
    cameras = " and the cameras.json under Advanced" if rendered.cameras else ""
    return Note(OK, f"Rendered {rendered.triangles:,} triangles on the {rig_name} rig at {resolution}×{resolution} "
                    f"in {rendered.seconds:.1f} s: the 12 inputs are in the galleries above{cameras}.")


class MeshSection:
    """The accordion that renders a dropped mesh into the galleries (and the cameras input), where it is built."""

    def __init__(self, config: Settings, quotas: ClientQuotas) -> None:
        self.renderer = MeshInputs(config, quotas)
        limits = self.renderer.limits
        with gr.Accordion("No depth renders? Start from a mesh", open=False, elem_id="mesh-inputs"):
            self.mesh = gr.File(label="Mesh (GLB, OBJ, PLY or zip)", type="filepath", elem_id="mesh-file",
                                file_types=[".glb", ".obj", ".ply", ".zip"], height=120)
            with gr.Row():
                self.rig = gr.Radio([(label, name) for name, label in RIGS.items()], value=CUBE6, label="Rig",
                                    elem_id="mesh-rig", scale=3)
                self.resolution = gr.Radio(list(RESOLUTIONS), value=RESOLUTIONS[-1], label="Resolution (px)",
                                           elem_id="mesh-resolution", scale=1)
            self.note = gr.HTML(note_html(Note(IDLE, (
                f"Give {ACCEPTED} (a bare OBJ loses its texture), at most {limits.max_bytes // MB} MB and "
                f"{limits.max_triangles:,} triangles; it is centred and scaled to fit the rig."
            ))), elem_id="mesh-note", elem_classes="input-note")
            with gr.Row():
                self.render = gr.Button("Render the 12 inputs", variant="secondary", elem_id="mesh-render")
                self.download = gr.DownloadButton("Download them (.zip)", visible=False, elem_id="mesh-download")

    def fills(self, views: gr.Gallery, depths: gr.Gallery, cameras: gr.File) -> gr.events.Dependency:
        """Render on click into the galleries (with slot captions), the cameras input, the note and the zip; the
        event, for what follows a fill."""

        def rendered(path: str | None, rig_name: str, size: int, request: gr.Request) -> dict:
            try:
                result = self.renderer.render(path, rig_name, size, Studio.client_of(request))
            except ReconError as error:
                return {self.note: note_html(Note(ERROR, error.message)),
                        self.download: gr.update(visible=False, value=None)}
            return {
                views: list(zip(result.views, SLOT_NAMES)),
                depths: list(zip(result.depths, SLOT_NAMES)),
                cameras: result.cameras,
                self.note: note_html(_done_note(result, rig_name, size)),
                self.download: gr.update(visible=True, value=result.archive),
            }

        return self.render.click(rendered, [self.mesh, self.rig, self.resolution],
                                 [views, depths, cameras, self.note, self.download],
                                 show_progress="minimal", api_visibility="private")
