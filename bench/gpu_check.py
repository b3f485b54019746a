"""GPU check (issue #15): one command that, on a CUDA machine, installs what the machine lacks, builds nvdiffrast's
plugin and prints one table: the gpu-marked tests, the two rendering backends side by side, a fusion and an
nvdiffrec job through the real queue (with their peak GPU memory), and the quality benchmark.

    python bench/gpu_check.py --prepare            # here, with network: wheels and meshes into .gpu-bundle/
    bash bench/gpu_check.sh [--out DIR] [--quick]  # there: the check (carry .gpu-bundle)

A GPU box has no network and may lack the project's packages, so `--prepare` downloads the wheels it lacks
(Python 3.12, manylinux x86_64) and copies the benchmark meshes into the ignored folder .gpu-bundle/, then
measures what travels with the repository. Without CUDA the check says so, runs what a CPU can (the gpu tests
are collected and skip, the queue jobs and the benchmark run on the CPU) and exits 0. Every part runs under a
time limit, within one overall budget, and table.md is rewritten after every row: a hung part or a killed run
still leaves the table of the parts before it. The out folder holds 7 files: table.md, results.json and a log
per part (setup, parity, pytest, queue, quality).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ElementTree
from dataclasses import asdict, astuple, dataclass
from datetime import datetime
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# The project's modules (and trimesh, huey, httpx) are imported where they are used: setup may first have to
# install what they need.

BUNDLE_DIR = ROOT / ".gpu-bundle"
WHEELS = BUNDLE_DIR / "wheels"
MESHES = BUNDLE_DIR / "meshes"
SHARED_MESHES = ROOT.parent / "shared" / "meshes"
MESH_FILES = {  # the benchmark meshes, with the files each needs beside it (licences: ../shared/meshes/README.md)
    "spot": ("spot.obj", "spot.mtl", "spot_texture.png"),
    "fandisk": ("fandisk.obj",),
    "cow": ("cow.obj",),
    "suzanne": ("suzanne.obj",),
    "teapot": ("teapot.obj",),
}
# What the service, its worker and tests/recon need that a stock CUDA PyTorch image lacks (as seen on the H200
# box, 2026-11: it has torch, numpy, scipy, pillow, scikit-image, networkx, httpx, pandas, huggingface-hub,
# typer, pytest and hypothesis), with their own missing dependencies. Same versions as here.
BUNDLE = (
    "gradio", "gradio-client", "hf-gradio", "fastapi", "starlette", "uvicorn", "python-multipart", "pydantic",
    "pydantic-core", "annotated-types", "typing-inspection", "opentelemetry-api", "brotli", "groovy", "orjson",
    "pydub", "pytz", "safehttpx", "semantic-version", "tomlkit",
    "huey", "redis", "nanoid", "trimesh", "xatlas", "diffrp-nvdiffrast",
    "pygltflib", "dataclasses-json", "marshmallow", "deprecated",
)
DEVICE_PYTHON = "3.12"
DEVICE_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
                    "manylinux2014_x86_64", "manylinux1_x86_64")
CARRY_LIMIT_MIB = 64
EXAMPLE = ROOT / "examples" / "spot"
PARTS = ("parity", "pytest", "queue", "quality")  # after setup, which always runs: the others need it
LIMIT_S = {"build": 300, "parity": 120, "pytest": 240, "services": 120, "job": 240, "mesh": 180}
PARITY_RES = 256
MIN_PART_S = 20  # a part (or a mesh, or a queued job) is not started with less of the budget left
OUT_OF_TIME = "the overall budget (--budget-s) is spent"
GIB = 1 << 30


# ---- the table -----------------------------------------------------------------------------------------------


@dataclass
class Row:
    part: str
    item: str
    status: str  # ok, FAILED, skipped or info
    measured: str = ""
    notes: str = ""


class Table:
    """The one table, rewritten to table.md and results.json after every row: a killed run keeps what it had."""

    def __init__(self, out: Path, title: str) -> None:
        self.out, self.title = out, title
        self.rows: list[Row] = []
        self.details: dict[str, object] = {}

    def add(self, *rows: Row) -> None:
        for row in rows:
            self.rows.append(row)
            print(f"[{row.part}] {row.item}: {row.status} {row.measured}".rstrip(), flush=True)
        self.write()

    def write(self) -> None:
        (self.out / "table.md").write_text(self.markdown())
        (self.out / "results.json").write_text(json.dumps(
            {"title": self.title, "rows": [asdict(row) for row in self.rows], "details": self.details},
            indent=1, default=str))

    def markdown(self) -> str:
        lines = [f"# {self.title}", "", "| part | item | status | measured | limit / notes |", "|---|---|---|---|---|"]
        for row in self.rows:
            cells = (str(cell).replace("|", "\\|").replace("\n", " ") for cell in astuple(row))
            lines.append(f"| {' | '.join(cells)} |")
        return "\n".join(lines) + "\n"

    @property
    def failed(self) -> bool:
        return any(row.status == "FAILED" for row in self.rows)


@dataclass
class Run:
    out: Path
    scratch: Path
    table: Table
    quick: bool
    deadline: float  # time.monotonic() by which every part should be done
    cuda: bool

    def time_for(self, limit_s: float) -> float:
        """A part's time limit: its own, or what is left of the overall budget."""
        return min(limit_s, self.deadline - time.monotonic())

    def log(self, part: str) -> Path:
        return self.out / f"{part}.log"


def run_logged(args: list[str], log: Path, timeout_s: float) -> tuple[int | None, float]:
    """Run a command in its own process group, its output appended to `log`: (exit code, or None when it ran
    past `timeout_s`; seconds taken). Whatever it started is killed when it ends, times out or we are stopped."""
    start = time.monotonic()
    with log.open("ab") as handle:
        handle.write(f"\n$ {' '.join(args)}\n".encode())
        handle.flush()
        proc = subprocess.Popen(args, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code: int | None = proc.wait(max(timeout_s, 1.0))
        except subprocess.TimeoutExpired:
            code = None
            handle.write(f"\n[gpu_check] killed after {timeout_s:.0f} s\n".encode())
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return code, time.monotonic() - start


def ended(code: int | None, seconds: float) -> str:
    return f"timed out after {seconds:.0f} s" if code is None else f"exit code {code}"


# ---- setup: the machine, the missing wheels, nvdiffrast's plugin ---------------------------------------------


def installed(distribution: str) -> bool:
    try:
        importlib.metadata.distribution(distribution)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def describe_machine() -> list[Row]:
    from torch.utils.cpp_extension import CUDA_HOME

    nvcc = Path(CUDA_HOME or "/nonexistent") / "bin" / "nvcc"
    release = "absent"
    if nvcc.exists():
        release = subprocess.run([str(nvcc), "--version"], capture_output=True, text=True).stdout
        release = release.split("release ")[-1].split(",")[0]
    software = Row("setup", "software", "info", f"Python {platform.python_version()}, torch {torch.__version__} "
                   f"(CUDA {torch.version.cuda}), nvcc {release}")
    if not torch.cuda.is_available():
        return [Row("setup", "machine", "info", f"no CUDA: {platform.machine()}, {os.cpu_count()} CPUs",
                    "GPU parts are skipped"), software]
    gpu = torch.cuda.get_device_properties(0)
    smi = shutil.which("nvidia-smi")
    driver = subprocess.run([smi, "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True,
                            text=True).stdout.strip() if smi else "?"
    return [Row("setup", "machine", "info", f"{torch.cuda.get_device_name(0)} (sm {gpu.major}.{gpu.minor}, "
                f"{gpu.total_memory / GIB:.1f} GiB, driver {driver}), {os.cpu_count()} CPUs"), software]


def install_missing(run: Run) -> Row:
    """pip-install the bundle's wheels whose distribution is missing here into a scratch folder on the path."""
    wheels = [w for w in sorted(WHEELS.glob("*.whl")) if not installed(w.name.split("-")[0])]
    if wheels:
        site = run.scratch / "site"
        _, seconds = run_logged([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                                 "--no-compile", "--disable-pip-version-check", "--target", str(site),
                                 *map(str, wheels)], run.log("setup"), 300)
        sys.path.insert(0, str(site))
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, (str(site), os.environ.get("PYTHONPATH"))))
        importlib.invalidate_caches()
    missing = [name for name in BUNDLE if not installed(name)]
    if missing:
        return Row("setup", "packages", "FAILED", f"missing: {', '.join(missing)}",
                   "setup.log; `python bench/gpu_check.py --prepare` (with network) fills .gpu-bundle, to carry")
    return Row("setup", "packages", "ok",
               f"installed {len(wheels)} bundled wheels in {seconds:.0f} s" if wheels else "nothing missing")


def build_nvdiffrast(run: Run) -> Row:
    """Compile (first use) and load nvdiffrast's CUDA plugin once, so later parts only load it."""
    if not run.cuda:
        found = importlib.util.find_spec("nvdiffrast") is not None
        return Row("setup", "nvdiffrast plugin", "skipped", "no CUDA",
                   f"package {'importable' if found else 'MISSING'}; its plugin builds on a CUDA machine")
    code, seconds = run_logged([sys.executable, "-c", "import nvdiffrast.torch as dr; dr.RasterizeCudaContext()"],
                               run.log("setup"), run.time_for(LIMIT_S["build"]))
    if code != 0:
        return Row("setup", "nvdiffrast plugin", "FAILED", ended(code, seconds), "setup.log has the compiler output")
    return Row("setup", "nvdiffrast plugin", "ok", f"built and loaded in {seconds:.0f} s")


def part_setup(run: Run) -> None:
    run.table.add(*describe_machine())
    run.table.add(install_missing(run))
    run.table.add(build_nvdiffrast(run))


# ---- parity of the two rendering backends --------------------------------------------------------------------


@dataclass(frozen=True)
class Tolerance:
    max: float | None = None  # bound on the largest |difference|
    mean: float | None = None  # bound on the mean |difference|
    cosine: float | None = None  # gradients: lower bound on the cosine similarity of the two

    def passes(self, found: dict[str, float]) -> bool:
        return ((self.max is None or found["max"] <= self.max) and (self.mean is None or found["mean"] <= self.mean)
                and (self.cosine is None or found["cosine"] >= self.cosine))

    def describe(self) -> str:
        bounds = (("max ≤", self.max), ("mean ≤", self.mean), ("cosine ≥", self.cosine))
        return ", ".join(f"{name} {value:g}" for name, value in bounds if value is not None)


PARITY_TOLERANCES = {
    "triangle ids": Tolerance(mean=0.02),  # the share of pixels whose ids differ
    "barycentrics": Tolerance(max=0.05, mean=1e-4),
    "depth": Tolerance(max=0.01, mean=1e-4),
    "interpolate": Tolerance(max=0.05, mean=1e-4),
    "texture": Tolerance(max=1e-4),
    "antialias": Tolerance(mean=2e-3),
    "grad: interpolate -> positions": Tolerance(cosine=0.99),
    "grad: antialias -> positions": Tolerance(cosine=0.9),
    "grad: texture -> texels": Tolerance(cosine=0.999),
}



@dataclass(frozen=True)
class Scene:
    """A mesh with what every op needs: per-vertex colours, uv (glTF convention: v down) and a texture."""

    name: str
    vertices: torch.Tensor  # (V, 3)
    faces: torch.Tensor  # (F, 3) int64
    colours: torch.Tensor  # (V, 3)
    uv: torch.Tensor  # (V, 2)
    texture: torch.Tensor  # (Ht, Wt, 3)

    def to(self, device: str) -> "Scene":
        return Scene(self.name, *(getattr(self, name).to(device)
                                  for name in ("vertices", "faces", "colours", "uv", "texture")))


def parity_scenes(device: str) -> list[Scene]:
    """An off-centre icosphere (spherical uv, random texture) and, where it is at hand, spot with its own uv and
    texture; both with random vertex colours."""
    import numpy as np
    import trimesh

    from worker.recon.render_inputs import normalize_mesh

    generator = torch.Generator().manual_seed(0)
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.7)
    direction = sphere.vertices / np.linalg.norm(sphere.vertices, axis=1, keepdims=True)
    sphere.apply_translation((0.05, -0.03, 0.02))
    uv = np.stack((np.arctan2(direction[:, 0], direction[:, 2]) / (2 * np.pi) + 0.5,
                   np.arccos(direction[:, 1].clip(-1, 1)) / np.pi), axis=1)
    meshes = [("sphere", sphere, uv, torch.rand(64, 96, 3, generator=generator))]
    spot_path = next((folder / "spot.obj" for folder in (MESHES, SHARED_MESHES) if (folder / "spot.obj").exists()),
                     None)
    if spot_path is not None:
        spot = normalize_mesh(trimesh.load(spot_path, force="mesh", process=False))
        texture = np.asarray(spot.visual.material.image.convert("RGB"), dtype=np.float32) / 255.0
        spot_uv = np.stack((spot.visual.uv[:, 0], 1.0 - spot.visual.uv[:, 1]), axis=1)
        meshes.append(("spot", spot, spot_uv, torch.as_tensor(texture)))
    return [Scene(name, torch.as_tensor(mesh.vertices, dtype=torch.float32),
                  torch.as_tensor(mesh.faces, dtype=torch.int64),
                  torch.rand(len(mesh.vertices), 3, generator=generator),
                  torch.as_tensor(uv, dtype=torch.float32), texture).to(device)
            for name, mesh, uv, texture in meshes]


def parity_cameras(size: int) -> list:
    """cube6's front and top cameras (orthographic) and an off-axis perspective one with an off-centre principal
    point, as in tests/recon/test_ops.py."""
    from worker.recon.rig import PERSPECTIVE, Camera, cube6_rig, look_at

    perspective = Camera(PERSPECTIVE, look_at((0.4, 0.6, 3.2), (-0.1, -0.2, -1.0), (0, 1, 0)), size, size,
                         1.1 * size, 1.1 * size, size / 2 + 0.3, size / 2 - 0.2)
    rig = cube6_rig(size)
    return [rig.cameras[0], rig.cameras[4], perspective]


def render_ops(ctx, scene: Scene, camera, uv: torch.Tensor, weights: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every op of worker/recon/ops.py through one backend, and the gradients the optimiser relies on."""
    from worker.recon import ops

    positions = scene.vertices.clone().requires_grad_(True)
    texture = scene.texture.clone().requires_grad_(True)
    rast = ops.rasterize(ctx, camera, positions, scene.faces)
    shaded = ops.interpolate(torch.cat((scene.colours, torch.ones_like(scene.colours[:, :1])), 1), rast,
                             scene.faces)
    aa = ops.antialias(ctx, shaded, rast, scene.faces, ctx.topology(scene.faces))
    textured = ops.texture(ctx, texture, uv)
    grad_interpolate, = torch.autograd.grad((shaded * weights).sum(), positions, retain_graph=True)
    grad_antialias, = torch.autograd.grad(aa[..., 3].sum(), positions)  # coverage: only silhouettes move it
    grad_texture, = torch.autograd.grad((textured * weights[..., :3]).sum(), texture)
    return {"tri_id": rast.tri_id, "bary": rast.bary.detach(), "depth": rast.depth.detach(),
            "interpolate": shaded.detach(), "antialias": aa.detach(), "texture": textured.detach(),
            "grad_interpolate": grad_interpolate, "grad_antialias": grad_antialias, "grad_texture": grad_texture}


def _difference(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    delta = (a.double() - b.double()).abs()
    return {"max": delta.max().item() if delta.numel() else 0.0, "mean": delta.mean().item() if delta.numel() else 0.0}


def _gradient_difference(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    """max/mean |a - b| relative to the largest |b|, and the cosine similarity (1 for two zero gradients)."""
    a, b = a.double().reshape(-1), b.double().reshape(-1)
    scale = b.abs().max().item() or 1.0
    norms = a.norm().item() * b.norm().item()
    cosine = (a @ b).item() / norms if norms else float(a.norm().item() == b.norm().item())
    return {"max": (a - b).abs().max().item() / scale, "mean": (a - b).abs().mean().item() / scale, "cosine": cosine}


def compare_backends(first, second, scene: Scene, camera) -> dict[str, dict[str, float]]:
    """The two RenderContexts on one scene and camera: for each check of PARITY_TOLERANCES, the max and mean
    |difference| (pixels where the triangle ids agree, for what depends on the triangle), cosine for gradients."""
    from worker.recon import ops

    generator = torch.Generator().manual_seed(1)
    weights = torch.rand(camera.height, camera.width, 4, generator=generator).to(scene.vertices.device)
    with torch.no_grad():  # one uv image for both (reaching a little outside [0, 1]: clamping is tested too)
        uv = ops.interpolate(scene.uv, ops.rasterize(second, camera, scene.vertices, scene.faces), scene.faces)
    uv = uv * 1.2 - 0.1
    a, b = render_ops(first, scene, camera, uv, weights), render_ops(second, scene, camera, uv, weights)
    same = (a["tri_id"] == b["tri_id"]) & (a["tri_id"] >= 0)
    return {
        "triangle ids": _difference((a["tri_id"] != b["tri_id"]).float(), torch.zeros(1)),
        "barycentrics": _difference(a["bary"][same], b["bary"][same]),
        "depth": _difference(a["depth"][same], b["depth"][same]),
        "interpolate": _difference(a["interpolate"][same], b["interpolate"][same]),
        "texture": _difference(a["texture"], b["texture"]),
        "antialias": _difference(a["antialias"], b["antialias"]),
        "grad: interpolate -> positions": _gradient_difference(a["grad_interpolate"], b["grad_interpolate"]),
        "grad: antialias -> positions": _gradient_difference(a["grad_antialias"], b["grad_antialias"]),
        "grad: texture -> texels": _gradient_difference(a["grad_texture"], b["grad_texture"]),
    }


def worst(results: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Per check, the worst over every scene and camera: the largest max and mean, the smallest cosine."""
    summary = {}
    for check in PARITY_TOLERANCES:
        found = [result[check] for result in results]
        summary[check] = {"max": max(f["max"] for f in found), "mean": max(f["mean"] for f in found)}
        if "cosine" in found[0]:
            summary[check]["cosine"] = min(f["cosine"] for f in found)
    return summary


def parity_rows(summary: dict[str, dict[str, float]]) -> list[Row]:
    rows = []
    for check, found in summary.items():
        tolerance = PARITY_TOLERANCES[check]
        if check == "triangle ids":
            measured, limit = f"differ on {100 * found['mean']:.3f}% of pixels", f"≤ {100 * tolerance.mean:g}%"
        else:
            measured = f"max {found['max']:.2e}, mean {found['mean']:.2e}" + (
                f" (of the largest entry), cosine {found['cosine']:.5f}" if "cosine" in found else "")
            limit = tolerance.describe()
        rows.append(Row("parity", check, "ok" if tolerance.passes(found) else "FAILED", measured, limit))
    return rows


def parity_main(path: Path) -> None:
    """Run in its own process by part_parity: nvdiffrast against the reference backend, both on CUDA."""
    from worker.recon import ops

    first = ops.RenderContext("cuda", backend=ops.NVDIFFRAST)
    second = ops.RenderContext("cuda", backend=ops.REFERENCE)
    results = []
    for scene in parity_scenes("cuda"):
        for index, camera in enumerate(parity_cameras(PARITY_RES)):
            results.append({"scene": scene.name, "camera": index, **compare_backends(first, second, scene, camera)})
            print(json.dumps(results[-1]), flush=True)
    path.write_text(json.dumps(results))


def part_parity(run: Run) -> None:
    """nvdiffrast against the PyTorch reference backend, both on CUDA, in its own process.

    The limits (PARITY_TOLERANCES), and why; fp32, 256x256 renders; the first GPU run reports the numbers anyway:
    - Away from edges both compute the same functions of the vertex positions: they differ by rounding (~1e-6).
    - triangle ids, at most 2% of the pixels: nvdiffrast decides coverage with vertices snapped to 1/16 px
      (CR_SUBPIXEL_LOG2 = 4), the reference with exact float edge functions, so a pixel centre within ~1/32 px
      of an edge may go to the neighbour: edge length per pixel x mean shift, ~1% for triangles of a few pixels.
    - barycentrics and interpolate: mean 1e-4 over the pixels whose ids agree (rounding, and the few below);
      max 0.05: where nvdiffrast covers a centre just outside the float triangle it clamps the barycentrics to
      [0, 1] while the reference extrapolates, off by at most one snap over the triangle's height in pixels.
      Depth inherits that times a triangle's depth span (world units; the scenes span ~1.4): max 0.01.
    - texture, max 1e-4: both get the same uv, so only the texel coordinate's rounding differs (size x 2^-24:
      ~6e-5 at 1024 texels).
    - antialias, mean 2e-3 (tests/recon/test_ops.py's): the blend across a silhouette is the same math except
      at pixel pairs whose ids differ.
    - gradients, by cosine similarity (their max/mean |difference| relative to the largest entry is reported):
      0.99 through interpolate (the same math at the same pixels), 0.999 through texture (no coverage involved),
      0.9 through antialias (tests/recon/test_ops.py's): a silhouette's gradient comes only from the pixel pairs
      an edge crosses, so one pair that differs changes a vertex's whole gradient.
    """
    if not run.cuda:
        run.table.add(Row("parity", "nvdiffrast vs reference", "skipped", "no CUDA",
                          "tests/test_gpu_check.py runs the comparison (reference against itself) on a CPU"))
        return
    path = run.scratch / "parity.json"
    code, seconds = run_logged([sys.executable, __file__, "--parity-json", str(path)], run.log("parity"),
                               run.time_for(LIMIT_S["parity"]))
    if code != 0 or not path.exists():
        run.table.add(Row("parity", "nvdiffrast vs reference", "FAILED", ended(code, seconds), "parity.log"))
        return
    results = json.loads(path.read_text())
    run.table.details["parity"] = results
    scenes = sorted({result["scene"] for result in results})
    run.table.add(Row("parity", "scenes", "info", f"{', '.join(scenes)} x {len(results) // len(scenes)} cameras, "
                      f"{PARITY_RES}x{PARITY_RES}, in {seconds:.0f} s", "worst over all; why these limits: "
                      "part_parity's docstring in bench/gpu_check.py"))
    run.table.add(*parity_rows(worst(results)))


# ---- pytest -m gpu -------------------------------------------------------------------------------------------


def part_pytest(run: Run) -> None:
    """The gpu-marked tests (all in tests/recon, which also needs no web packages to collect)."""
    junit = run.scratch / "pytest.xml"
    code, seconds = run_logged([sys.executable, "-m", "pytest", "-m", "gpu", "tests/recon", "-p", "no:cacheprovider",
                                f"--junitxml={junit}"], run.log("pytest"), run.time_for(LIMIT_S["pytest"]))
    if not junit.exists():
        run.table.add(Row("pytest", "pytest -m gpu tests/recon", "FAILED", ended(code, seconds), "pytest.log"))
        return
    cases = list(ElementTree.parse(junit).iter("testcase"))
    failed = [case for case in cases if case.find("failure") is not None or case.find("error") is not None]
    skipped = [case for case in cases if case.find("skipped") is not None]
    reasons = sorted({case.find("skipped").get("message", "") for case in skipped})
    run.table.add(Row(
        "pytest", "pytest -m gpu tests/recon", "ok" if code == 0 and not failed else "FAILED",
        f"{len(cases) - len(failed) - len(skipped)} passed, {len(failed)} failed, {len(skipped)} skipped "
        f"in {seconds:.0f} s", "; ".join(filter(None, [
            "failed: " + ", ".join(case.get("name") for case in failed) if failed else "",
            "skip reasons: " + "; ".join(reasons) if reasons else ""]))))


# ---- a fusion and an nvdiffrec job through the real queue ----------------------------------------------------


def measured_consumer() -> None:
    """`huey_consumer worker.queue.tasks.huey` (same arguments), plus hooks that append to $GPU_CHECK_EVENTS when the
    worker is ready (after the project's own startup hook has loaded the models) and each task's peak GPU memory
    as torch's allocator saw it in this process (nvdiffrast's own rasterizer buffers are not included)."""
    from huey import signals
    from huey.bin.huey_consumer import consumer_main

    from worker.queue.tasks import huey

    events = Path(os.environ["GPU_CHECK_EVENTS"])

    def note(**event: object) -> None:
        with events.open("a") as handle:
            handle.write(json.dumps(event) + "\n")

    @huey.on_startup()
    def ready() -> None:
        if torch.cuda.is_available():
            torch.cuda.init()  # the CUDA context is the worker's, not the first job's
        note(ready=time.time())

    @huey.signal(signals.SIGNAL_EXECUTING)
    def reset_peak(signal_name: str, task: object) -> None:
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()

    @huey.signal(signals.SIGNAL_COMPLETE, signals.SIGNAL_ERROR)
    def record_peak(signal_name: str, task, *args: object) -> None:
        cuda = torch.cuda.is_available()
        note(job_id=task.args[0], peak_allocated=torch.cuda.max_memory_allocated() if cuda else None,
             peak_reserved=torch.cuda.max_memory_reserved() if cuda else None)

    consumer_main()


def read_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def wait_for(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def queue_job(run: Run, stack, model: str, events: Path) -> Row:
    """Submit examples/spot over REST, poll GET /jobs/{id} until it ends; wall time, stages, peak GPU memory."""
    import httpx

    def finished() -> bool:
        if not stack.web.alive():
            raise RuntimeError("app.py exited")
        try:
            return stack.job(job_id)["status"] in ("completed", "failed", "cancelled")
        except httpx.TransportError:  # a dropped or refused connection: ask again, as any client would
            return False

    limit = run.time_for(LIMIT_S["job"])
    if limit < MIN_PART_S:
        return Row("queue", f"{model} job", "skipped", "out of time", OUT_OF_TIME)
    start = time.monotonic()
    job_id = stack.submit(EXAMPLE, model)["job_id"]
    if not wait_for(finished, limit):
        return Row("queue", f"{model} job", "FAILED", f"not done after {limit:.0f} s", "queue.log")
    wall = time.monotonic() - start
    record = stack.job(job_id)
    run.table.details.setdefault("queue", {})[model] = {"record": record}
    if record["status"] != "completed":
        return Row("queue", f"{model} job", "FAILED", f"{record['status']} after {wall:.1f} s", record["error"] or "")
    report = stack.http.get(f"/jobs/{job_id}/report").json()
    run.table.details["queue"][model]["report"] = report
    peak = next((event for event in read_events(events) if event.get("job_id") == job_id), {})
    memory = (f"peak GPU memory {peak['peak_allocated'] / GIB:.2f} GiB allocated, "
              f"{peak['peak_reserved'] / GIB:.2f} GiB reserved" if peak.get("peak_allocated") is not None
              else "peak GPU memory n/a (CPU)")
    refinement = report.get("refinement") or {}
    backend = f"; {refinement['backend']}, {refinement['iterations']} iterations" if refinement else ""
    stages = " ".join(f"{name}={seconds:.2f}" for name, seconds in report.get("timings", {}).items()
                      if name != "total")
    return Row("queue", f"{model} job", "ok", f"completed in {wall:.1f} s (worker {report['wall_time_s']:.1f} s); "
               f"{memory}{backend}", f"stages (s): {stages}")


def part_queue(run: Run) -> None:
    """`python app.py` (its REST API, no embedded worker) and a real huey_consumer over a SQLite queue."""
    from tests.support.processes import Process
    from tests.support.stack import Stack

    workdir = run.scratch / "queue"
    events = workdir / "events.jsonl"
    env = {"RECON_QUEUE": "sqlite", "RECON_EMBEDDED_WORKERS": "0", "RECON_TORCH_THREADS": "0",
           "GRADIO_TEMP_DIR": str(workdir / "gradio"), "GPU_CHECK_EVENTS": str(events)}
    start = time.monotonic()
    stack = None
    try:
        stack = Stack(workdir, **env)
        web_s = time.monotonic() - start
        worker = Process([sys.executable, "-c", "from bench.gpu_check import measured_consumer; measured_consumer()",
                          "worker.queue.tasks.huey", "-w", "1", "-k", "thread", "-d", "0.05", "-m", "0.25"],
                         stack.env, workdir / "worker.log")
        stack.workers.append(worker)
        wait_for(lambda: not worker.alive() or any("ready" in event for event in read_events(events)),
                 run.time_for(LIMIT_S["services"]))
        ready = worker.alive() and any("ready" in event for event in read_events(events))
        run.table.add(Row("queue", "services", "ok" if ready else "FAILED",
                          f"app.py serving in {web_s:.1f} s, huey_consumer ready (models loaded) in "
                          f"{time.monotonic() - start - web_s:.1f} s" if ready else "huey_consumer not ready",
                          "SQLite queue, RECON_EMBEDDED_WORKERS=0, one worker thread"))
        if ready:
            for model in ("fusion", "nvdiffrec"):
                run.table.add(queue_job(run, stack, model, events))
    finally:
        if stack is not None:
            stack.close()
        with run.log("queue").open("a") as log:
            for path in sorted(workdir.glob("*.log")):
                log.write(f"\n==== {path.name}\n{path.read_text(errors='replace')}")


# ---- the quality benchmark -----------------------------------------------------------------------------------


def quality_row(mesh: str, row: dict) -> Row:
    m = row["metrics"]
    exact = (f", P2S {m['p2s_pct']:.4f}%, F@0.5% {m['f@0.5%']:.4f}, F@1% {m['f@1%']:.4f}, "
             f"NC {m['normal_consistency']:.4f}" if "p2s_pct" in m else "")
    stages = " ".join(f"{name}={seconds:.2f}" for name, seconds in row["timings"].items() if name != "total")
    return Row("quality", f"{mesh} / {row['model']}", "ok",
               f"Chamfer {m['chamfer_pct']:.4f}%{exact}, PSNR {m['psnr_db']:.2f} dB, IoU {m['iou']:.4f}, "
               f"{m['triangles']} tris, {'closed' if m['watertight'] else 'open'}, wall {m['wall_s']:.1f} s",
               f"stages (s): {stages}" + ("" if exact else "; P2S/F/NC need Open3D"))


def part_quality(run: Run) -> None:
    """bench/quality.py --models fusion,nvdiffrec, one process per mesh so that each finished mesh is kept."""
    folder = next((folder for folder in (MESHES, SHARED_MESHES) if (folder / "spot.obj").exists()), None)
    if folder is None:
        run.table.add(Row("quality", "meshes", "FAILED", "none found", "run --prepare (copies them to .gpu-bundle)"))
        return
    names = [name for name in MESH_FILES if (folder / MESH_FILES[name][0]).exists()][:1 if run.quick else None]
    empty = run.scratch / "no-meshes"
    empty.mkdir(exist_ok=True)
    sizes = ["--res", "256", "--samples", "20000"] if run.quick else []
    for name in names:
        limit = run.time_for(LIMIT_S["mesh"])
        if limit < MIN_PART_S:
            run.table.add(Row("quality", name, "skipped", "out of time", OUT_OF_TIME))
            continue
        result = run.scratch / f"quality-{name}.json"
        code, seconds = run_logged([sys.executable, "bench/quality.py", str(folder / MESH_FILES[name][0]),
                                    "--meshes-dir", str(empty), "--models", "fusion,nvdiffrec", "--no-baseline",
                                    "--json", str(result), *sizes], run.log("quality"), limit)
        if code != 0 or not result.exists():
            run.table.add(Row("quality", name, "FAILED", ended(code, seconds), "quality.log"))
            continue
        rows = json.loads(result.read_text())
        run.table.details.setdefault("quality", {})[name] = rows
        run.table.add(*(quality_row(name, row) for row in rows if row["model"] != "reference, resampled"))


# ---- prepare (here, with network) ----------------------------------------------------------------------------


def download_wheel(spec: str) -> bool:
    platforms = [arg for name in DEVICE_PLATFORMS for arg in ("--platform", name)]
    return subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                           "--python-version", DEVICE_PYTHON, "--implementation", "cp", *platforms,
                           "--disable-pip-version-check", "-d", str(WHEELS), spec]).returncode == 0


def carried_mib() -> float:
    """What a device run sends: the repository's tracked and untracked-but-not-ignored files, and .gpu-bundle."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    files = [ROOT / name for name in listed if name and (ROOT / name).is_file()]
    files += [path for path in BUNDLE_DIR.rglob("*") if path.is_file()]
    return sum(path.stat().st_size for path in files) / (1 << 20)


def prepare(meshes_from: Path) -> int:
    """Wheels (the versions installed here; the newest where this version has none for the device's Python) and
    the benchmark meshes into .gpu-bundle/; fails if what travels exceeds the device's limit."""
    shutil.rmtree(WHEELS, ignore_errors=True)
    WHEELS.mkdir(parents=True)
    for name in BUNDLE:
        pinned = f"{name}=={importlib.metadata.version(name)}"
        if not download_wheel(pinned):
            print(f"{pinned} has no wheel for Python {DEVICE_PYTHON}; taking the newest", file=sys.stderr)
            if not download_wheel(name):
                print(f"could not download {name}", file=sys.stderr)
                return 1
    shutil.rmtree(MESHES, ignore_errors=True)
    MESHES.mkdir(parents=True)
    for path in ("README.md", *(name for files in MESH_FILES.values() for name in files)):
        shutil.copy(meshes_from / path, MESHES / path)
    wheels = sorted(path.name for path in WHEELS.glob("*"))
    mib = carried_mib()
    print(f"{len(wheels)} wheels, {len(list(MESHES.iterdir()))} mesh files in {BUNDLE_DIR}:\n  " + "\n  ".join(wheels))
    print(f"carried to the device (repository + .gpu-bundle): {mib:.1f} MiB of {CARRY_LIMIT_MIB}")
    return 0 if mib < CARRY_LIMIT_MIB else 1


# ---- main ----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/gpu_check.py", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "test-output" / "gpu-check",
                        help="folder for table.md, results.json and the logs (default: test-output/gpu-check)")
    parser.add_argument("--quick", action="store_true",
                        help="one mesh at 256x256 with 20000 samples; on a CPU nvdiffrec refines for 10 s")
    parser.add_argument("--budget-s", type=float, default=420,
                        help="overall time budget: no part runs past it, later ones are skipped (default 420)")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    parser.add_argument("--prepare", action="store_true",
                        help="download the wheels and copy the meshes into .gpu-bundle/ (needs network), then stop")
    parser.add_argument("--meshes-from", type=Path, default=SHARED_MESHES, help="--prepare: where the meshes are")
    parser.add_argument("--parity-json", type=Path, help=argparse.SUPPRESS)  # part_parity's own process
    args = parser.parse_args(argv)
    if args.prepare:
        return prepare(args.meshes_from)
    if args.parity_json:
        parity_main(args.parity_json)
        return 0
    parts = [part.strip() for part in args.parts.split(",") if part.strip()]
    if unknown := sorted(set(parts) - set(PARTS)):
        parser.error(f"unknown part(s) {', '.join(unknown)}; parts: {', '.join(PARTS)}")

    args.out.mkdir(parents=True, exist_ok=True)
    for old in ("table.md", "results.json", *(f"{part}.log" for part in ("setup", *PARTS))):
        (args.out / old).unlink(missing_ok=True)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # a GPU box may have no network
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["PYTHONUNBUFFERED"] = "1"
    if args.quick:
        os.environ["RECON_NVDIFFREC_CPU_BUDGET_S"] = "10"  # CPU only: nvdiffrec refines for at most this long
    # torch builds nvdiffrast's plugin with the ninja beside this Python (a venv's bin need not be on PATH).
    os.environ["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", "")))
    started = time.monotonic()
    title = (f"GPU check, {datetime.now().strftime('%Y-%m-%d %H:%M')}, {platform.node()}"
             f"{', --quick' if args.quick else ''}")
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as scratch:
        out = args.out.resolve()
        run = Run(out, Path(scratch), Table(out, title), args.quick, started + args.budget_s,
                  torch.cuda.is_available())
        if not run.cuda:
            print("no CUDA here: the GPU parts are skipped, the CPU parts run", flush=True)
        steps = {"setup": part_setup, "parity": part_parity, "pytest": part_pytest, "queue": part_queue,
                 "quality": part_quality}
        for name in ("setup", *(part for part in PARTS if part in parts)):
            if run.time_for(1e9) < MIN_PART_S:
                run.table.add(Row(name, "all", "skipped", "out of time", OUT_OF_TIME))
                continue
            print(f"---- {name}", flush=True)
            try:
                steps[name](run)
            except Exception as exc:  # noqa: BLE001 - a part that breaks becomes a row; the next parts still run
                with run.log(name).open("a") as log:
                    log.write(traceback.format_exc())
                run.table.add(Row(name, "all", "FAILED", f"{type(exc).__name__}: {exc}"[:300], f"{name}.log"))
    run.table.add(Row("total", "wall time", "info", f"{time.monotonic() - started:.0f} s"))
    print("\n" + run.table.markdown())
    return 1 if run.table.failed else 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped: still stop the processes it started
    sys.exit(main())
