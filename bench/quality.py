"""Quality benchmark: every available model and a screened-Poisson baseline against the ground-truth meshes.

    python bench/quality.py [MESH ...] [--meshes-dir DIR] [--corpus tuning|held-out|shared|all [--classes bore,...]]
                            [--models fusion,nvdiffrec] [--option NAME=VALUE ...] [--res 512]

For each mesh (those in --meshes-dir, plus any given), render_inputs writes the 12
inputs at --res and reference.glb (the normalised mesh with its colours); each model
and the baseline reconstruct it, and are scored against the reference:
- Chamfer L1: symmetric mean distance between SAMPLES points sampled on each surface
  (% of the reference's bounding-box diagonal). Sampling alone costs ~0.1%: the
  "reference, resampled" row shows that floor. One draw of samples varies by about
  0.0001-0.0003%, as much as good meshes differ, so the figure is the mean of
  CHAMFER_DRAWS draws (every model is scored against the same reference samples).
- P2S: symmetric mean distance from each surface's samples (the first draw) to the other *surface*.
- F@0.5% / F@1%: F-score of those point-to-surface distances at 0.5% / 1% of the diagonal.
- NC: normal consistency, the mean |cos| between the normal at each sample and the normal of the other
  surface's closest triangle (both directions): 1 for a perfect surface; noisy or rounded faces lower it.
- PSNR / IoU: 8 held-out orthographic views from the corners of the cube (none of the
  input cameras), reference and result rendered by the same renderer with their own
  colours (texture or vertex colours), sRGB, background black, PSNR over the union
  of both silhouettes; IoU of the silhouettes. Means over the 8 views.
- ceil: the PSNR the result's geometry would reach with perfect colours (each visible point coloured as the
  reference's closest point): above PSNR by what a better texture could gain, the rest is geometry's.
- wall: seconds of the whole run, PNG decoding included; stages as each model reports them.
- black tx: texels inside the result's charts that are black where the reference is not (bench/texels.py);
  filled: the share of the surface no view saw, coloured by filling (the model's report).
With --corpus the objects come from bench/corpus.py (one per failure class and seed); after the rows come a
per-class summary and the worst case of every metric.
Needs the bench-only requirements (bench/requirements.txt: Open3D) for the baseline, P2S, F-scores, NC and ceil;
without Open3D those are left out (n/a) and the rest is measured as usual.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import trimesh

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

try:
    import open3d as o3d  # noqa: E402
    OPEN3D_MISSING = ""
except ImportError as error:  # bench-only and 400 MB: machines without it (a GPU box, say) still get the other metrics
    o3d, OPEN3D_MISSING = None, str(error)
from worker.config import settings  # noqa: E402
from bench.corpus import SPLITS, Specimen, corpus  # noqa: E402
from bench.summary import (BASELINE, Row, check_targets, class_summary, format_table, refinement_summary,  # noqa: E402
                           worst_cases)
from bench.texels import black_texels  # noqa: E402
from worker.jobs.models import MODELS, availability  # noqa: E402
from worker.recon.colour import linear_to_srgb  # noqa: E402
from worker.recon.evaluate import point_chamfer  # noqa: E402
from worker.recon.inputs import load_inputs  # noqa: E402
from worker.recon import previews  # noqa: E402
from worker.recon.raster import Raster, rasterize  # noqa: E402
from worker.recon.render_inputs import render_inputs  # noqa: E402
from worker.recon.rig import ORTHO, SLOT_NAMES, Camera, look_at  # noqa: E402
from worker.recon.surface import is_watertight  # noqa: E402

MESH_SUFFIXES = (".obj", ".ply", ".glb", ".gltf", ".stl", ".off")
SAMPLES = 200_000
CHAMFER_DRAWS = 4
HELD_OUT_RES = 512
HELD_OUT_HALF_WIDTH = 1.4  # world units; the normalised mesh lies in [-0.8, 0.8]^3, whose widest shadow is 1.31
F_THRESHOLDS = (0.005, 0.01)


@dataclass
class Coloured:
    """A mesh as the renderer needs it: sRGB vertex colours or a UV-mapped sRGB texture."""

    vertices: np.ndarray
    faces: np.ndarray
    vertex_srgb: np.ndarray | None = None  # (V, 3) in [0, 1]
    uv: np.ndarray | None = None  # (V, 2), trimesh convention (v up)
    texture: np.ndarray | None = None  # (H, W, 3) sRGB in [0, 1]


def from_trimesh(mesh: trimesh.Trimesh, colour_is_linear: bool) -> Coloured:
    """A loaded mesh with its colours. glTF COLOR_0 is linear (our models write it so); render_inputs'
    reference.glb stores its procedural sRGB colours there as they are, hence `colour_is_linear`."""
    visual = mesh.visual
    if visual.kind == "texture":
        image = visual.material.baseColorTexture
        texture = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
        return Coloured(np.asarray(mesh.vertices), np.asarray(mesh.faces), uv=np.asarray(visual.uv), texture=texture)
    colours = np.asarray(visual.vertex_colors[:, :3], dtype=np.float32) / 255.0
    return Coloured(np.asarray(mesh.vertices), np.asarray(mesh.faces),
                    vertex_srgb=linear_to_srgb(colours) if colour_is_linear else colours)


def held_out_cameras(res: int = HELD_OUT_RES) -> list[Camera]:
    """Orthographic views from the 8 corners of the cube, looking at the origin (no input camera looks so)."""
    cameras = []
    for sx in (-1, 1):
        for sy in (-1, 1):
            for sz in (-1, 1):
                position = 3.0 * np.array([sx, sy, sz]) / math.sqrt(3)
                matrix = look_at(tuple(position), tuple(-position), (0, 1, 0))
                focal = res / (2 * HELD_OUT_HALF_WIDTH)
                cameras.append(Camera(ORTHO, matrix, res, res, focal, focal, res / 2, res / 2))
    return cameras


def _drawn(mesh: Coloured) -> previews.Coloured:
    def tensor(array: np.ndarray | None) -> torch.Tensor | None:
        return None if array is None else torch.as_tensor(array, dtype=torch.float32)

    return previews.Coloured(tensor(mesh.vertices), torch.as_tensor(mesh.faces, dtype=torch.int64),
                             tensor(mesh.vertex_srgb), tensor(mesh.uv), tensor(mesh.texture))


def render(camera: Camera, mesh: Coloured) -> tuple[np.ndarray, np.ndarray]:
    """sRGB image (H, W, 3), black background, and the silhouette: drawn as the job's previews draw a result."""
    drawn = _drawn(mesh)
    return _shaded(drawn, rasterize(camera, drawn.vertices, drawn.faces))


def _shaded(drawn: previews.Coloured, raster: Raster) -> tuple[np.ndarray, np.ndarray]:
    return previews.surface_colour(drawn, raster.tri_id, raster.bary).numpy(), (raster.tri_id >= 0).numpy()


def _scene(vertices: np.ndarray, faces: np.ndarray) -> "o3d.t.geometry.RaycastingScene":
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(np.asarray(vertices, dtype=np.float32)),
                        o3d.core.Tensor(np.asarray(faces, dtype=np.uint32)))
    return scene


class TrueColours:
    """The reference's colour at the point of its surface closest to any point (Open3D): what a perfect texture
    on another surface would show there."""

    def __init__(self, reference: Coloured) -> None:
        self.reference = _drawn(reference)
        self.scene = _scene(reference.vertices, reference.faces)

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) points -> (N, 3) sRGB colours."""
        closest = self.scene.compute_closest_points(o3d.core.Tensor(points.astype(np.float32)))
        triangle = torch.as_tensor(closest["primitive_ids"].numpy().astype(np.int64))[:, None]
        u, v = torch.as_tensor(closest["primitive_uvs"].numpy()).unbind(dim=1)
        bary = torch.stack((1 - u - v, u, v), dim=1)[:, None]
        return previews.surface_colour(self.reference, triangle, bary)[:, 0].numpy()

    def image(self, drawn: previews.Coloured, raster: Raster) -> np.ndarray:
        """The rasterised mesh (H, W, 3) with every visible point in the reference's colour nearest to it: the
        picture of its geometry under a perfect texture."""
        covered = raster.tri_id >= 0
        corners = drawn.vertices[drawn.faces[raster.tri_id[covered]]]
        image = np.zeros((*covered.shape, 3), dtype=np.float32)
        image[covered.numpy()] = self((corners * raster.bary[covered][..., None]).sum(dim=1).numpy())
        return image


def closest_on_surface(points: np.ndarray, mesh: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray]:
    """Exact distance from each point to the triangle surface and the triangle it is closest to (Open3D)."""
    closest = _scene(mesh.vertices, mesh.faces).compute_closest_points(o3d.core.Tensor(points.astype(np.float32)))
    distance = np.linalg.norm(closest["points"].numpy() - points, axis=1)
    return distance, closest["primitive_ids"].numpy().astype(np.int64)


def geometry_metrics(reference: trimesh.Trimesh, result: trimesh.Trimesh, samples: int, seed: int) -> dict:
    diagonal = float(np.linalg.norm(reference.bounds[1] - reference.bounds[0]))
    draws = [(trimesh.sample.sample_surface(reference, samples, seed=seed + 2 * draw),
              trimesh.sample.sample_surface(result, samples, seed=seed + 2 * draw + 1))
             for draw in range(CHAMFER_DRAWS)]
    chamfers = [point_chamfer(ref_points, res_points) for (ref_points, _), (res_points, _) in draws]
    if o3d is None:
        return {"chamfer_pct": 100 * float(np.mean(chamfers)) / diagonal}
    (ref_points, ref_faces), (res_points, res_faces) = draws[0]
    recall_d, recall_faces = closest_on_surface(ref_points, result)
    precision_d, precision_faces = closest_on_surface(res_points, reference)
    agreement = np.concatenate((
        np.abs((reference.face_normals[ref_faces] * result.face_normals[recall_faces]).sum(axis=1)),
        np.abs((result.face_normals[res_faces] * reference.face_normals[precision_faces]).sum(axis=1)),
    ))
    metrics = {
        "chamfer_pct": 100 * float(np.mean(chamfers)) / diagonal,
        "p2s_pct": 100 * (recall_d.mean() + precision_d.mean()) / 2 / diagonal,
        "normal_consistency": float(agreement.mean()),
    }
    for threshold in F_THRESHOLDS:
        precision = float((precision_d < threshold * diagonal).mean())
        recall = float((recall_d < threshold * diagonal).mean())
        metrics[f"f@{100 * threshold:g}%"] = 2 * precision * recall / max(precision + recall, 1e-12)
    return metrics


def _psnr_and_iou(expected: np.ndarray, expected_mask: np.ndarray, got: np.ndarray, mask: np.ndarray
                  ) -> tuple[float, float]:
    union = expected_mask | mask
    mse = float(((got - expected) ** 2)[union].mean()) if union.any() else 0.0
    return 10 * math.log10(1.0 / max(mse, 1e-10)), (expected_mask & mask).sum() / max(union.sum(), 1)


def view_metrics(reference_views: list[tuple[np.ndarray, np.ndarray]], result: Coloured, cameras: list[Camera],
                 true_colours: TrueColours | None = None) -> dict:
    """PSNR and IoU over the held-out views; with `true_colours`, also the PSNR the result's geometry would reach
    with perfect colours: what no refinement of its colours alone can pass."""
    drawn = _drawn(result)
    psnrs, ious, ceilings = [], [], []
    for (expected, expected_mask), camera in zip(reference_views, cameras):
        raster = rasterize(camera, drawn.vertices, drawn.faces)
        got, mask = _shaded(drawn, raster)
        psnr, iou = _psnr_and_iou(expected, expected_mask, got, mask)
        psnrs.append(psnr)
        ious.append(iou)
        if true_colours is not None:
            ceilings.append(_psnr_and_iou(expected, expected_mask, true_colours.image(drawn, raster), mask)[0])
    metrics = {"psnr_db": float(np.mean(psnrs)), "iou": float(np.mean(ious))}
    if ceilings:
        metrics["colour_ceiling_db"] = float(np.mean(ceilings))
    return metrics


def load_job_inputs(directory: Path):
    views = [directory / f"view_{i}_{slot}.png" for i, slot in enumerate(SLOT_NAMES)]
    depths = [directory / f"depth_{i}_{slot}.png" for i, slot in enumerate(SLOT_NAMES)]
    cameras = json.loads((directory / "cameras.json").read_text())
    return load_inputs(views, depths, None if cameras["camera_model"] == ORTHO else cameras)


def run_model(name: str, inputs_dir: Path, out_dir: Path, device: str, options: dict | None = None
              ) -> tuple[trimesh.Trimesh, dict, float]:
    """Decode the inputs and run a registered model as a job would, with its default options but for those of
    `options` it has."""
    spec = MODELS[name]
    known = {option.name for option in spec.options}
    chosen = {key: value for key, value in (options or {}).items() if key in known}
    reconstructor = spec.load(settings)
    start = time.perf_counter()
    inputs = load_job_inputs(inputs_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = reconstructor(inputs, out_dir / "model.glb", lambda fraction, stage: None, spec.resolve_options(chosen),
                           device)
    wall = time.perf_counter() - start
    mesh = trimesh.load(out_dir / "model.glb", force="mesh", process=False)
    return mesh, report, wall


def run_baseline(inputs_dir: Path) -> tuple[trimesh.Trimesh, Coloured, dict, float]:
    from bench.poisson import poisson_baseline  # needs Open3D

    start = time.perf_counter()
    inputs = load_job_inputs(inputs_dir)
    vertices, faces, srgb, timings = poisson_baseline(inputs)
    wall = time.perf_counter() - start
    return trimesh.Trimesh(vertices, faces, process=False), Coloured(vertices, faces, vertex_srgb=srgb), timings, wall


def _reference_srgb(reference: Coloured) -> np.ndarray:
    """The reference's sRGB colour at each of its vertices (texture: the texel under the vertex's UV)."""
    if reference.vertex_srgb is not None:
        return reference.vertex_srgb
    height, width = reference.texture.shape[:2]
    cols = np.clip((reference.uv[:, 0] % 1.0 * width).astype(int), 0, width - 1)
    rows = np.clip(((1.0 - reference.uv[:, 1] % 1.0) * height).astype(int), 0, height - 1)
    return reference.texture[rows, cols]


def _run(model: str, inputs_dir: Path, out_dir: Path, device: str, options: dict) -> tuple:
    """(model, mesh, coloured, timings, wall, watertight, extra metrics) of one model or the baseline."""
    if model == BASELINE:
        mesh, coloured, timings, wall = run_baseline(inputs_dir)
        return model, mesh, coloured, timings, wall, is_watertight(np.asarray(mesh.faces)), {}
    mesh, report, wall = run_model(model, inputs_dir, out_dir, device, options)
    welded = mesh.copy()
    welded.merge_vertices(merge_tex=True, merge_norm=True)
    extra = {"filled_share": report.get("colour_filled_share")}
    if "refinement" in report:
        extra["kept"] = bool(report["refinement"]["kept"])
    return (model, welded, from_trimesh(mesh, colour_is_linear=True), report["timings"], wall,
            bool(report["mesh"]["watertight"]), extra | {"black_texels": black_texels(mesh, *_truth(inputs_dir))})


def _truth(inputs_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    reference = from_trimesh(trimesh.load(inputs_dir / "reference.glb", force="mesh", process=False), False)
    return reference.vertices, _reference_srgb(reference)


def benchmark_mesh(specimen: Specimen, workdir: Path, models: list[str], device: str, res: int, samples: int,
                   baseline: bool, options: dict | None = None) -> list[Row]:
    """Render one object's inputs, run the baseline and every model on them and score each against it; a run
    that fails becomes a row saying why (the baseline returning a mesh where a model fails is a finding)."""
    name = specimen.name
    inputs_dir = workdir / name / "inputs"
    print(f"[{name}] rendering inputs at {res}x{res}", file=sys.stderr)
    render_inputs(specimen.build(), inputs_dir, res=res)
    reference_mesh = trimesh.load(inputs_dir / "reference.glb", force="mesh", process=False)
    reference = from_trimesh(reference_mesh, colour_is_linear=False)
    cameras = held_out_cameras()
    reference_views = [render(camera, reference) for camera in cameras]
    true_colours = TrueColours(reference) if o3d is not None else None

    def row(model: str, metrics: dict, timings: dict | None = None) -> Row:
        return Row(name, model, metrics, timings or {}, specimen.kind, specimen.split)

    rows = [row("reference, resampled", geometry_metrics(reference_mesh, reference_mesh, samples, seed=10))]
    rows[0].metrics.update(psnr_db=math.inf, colour_ceiling_db=math.inf, iou=1.0, triangles=len(reference_mesh.faces),
                           watertight=bool(reference_mesh.is_watertight))
    for model in ([BASELINE] if baseline else []) + models:
        print(f"[{name}] {model}", file=sys.stderr)
        try:
            model, mesh, coloured, timings, wall, watertight, extra = _run(model, inputs_dir, workdir / name / model,
                                                                           device, options or {})
        except Exception as exc:  # noqa: BLE001 - a benchmark reports every failure and goes on
            rows.append(row(model, {"failed": f"{type(exc).__name__}: {exc}"}))
            continue
        result = row(model, geometry_metrics(reference_mesh, mesh, samples, seed=0), timings)
        result.metrics.update(view_metrics(reference_views, coloured, cameras, true_colours))
        result.metrics.update(triangles=len(mesh.faces), watertight=watertight, wall_s=wall, **extra)
        rows.append(result)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/quality.py", description=__doc__.splitlines()[0])
    parser.add_argument("meshes", nargs="*", type=Path, help="extra mesh files (any format trimesh reads)")
    parser.add_argument("--meshes-dir", type=Path, help="every mesh in this folder is benchmarked too")
    parser.add_argument("--corpus", choices=("all",) + SPLITS,
                        help="benchmark bench/corpus.py's objects of this split (tuning, held-out, shared, all)")
    parser.add_argument("--classes", default="", help="with --corpus: only these comma-separated classes")
    parser.add_argument("--objects", default="", help="with --corpus: only these comma-separated objects (bore-0)")
    parser.add_argument("--models", default="fusion",
                        help="comma-separated models to run, of those available here (nvdiffrec takes ~2 min "
                             "per mesh on a CPU); default: fusion")
    parser.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                        help="run every model that has this option with this value (repeatable): "
                             "--option grid_resolution=192")
    parser.add_argument("--no-baseline", action="store_true", help=f"skip the {BASELINE} baseline")
    parser.add_argument("--res", type=int, default=512, help="input resolution (default 512)")
    parser.add_argument("--samples", type=int, default=SAMPLES, help=f"surface samples per mesh (default {SAMPLES})")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workdir", type=Path, help="keep inputs and outputs here (default: a temporary folder)")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON to this file")
    args = parser.parse_args(argv)

    if o3d is None:
        print(f"Open3D does not load ({OPEN3D_MISSING}; pip install -r bench/requirements.txt, and on Debian "
              "apt-get install libusb-1.0-0): no baseline, and P2S, F-scores, NC and the colour ceiling are n/a",
              file=sys.stderr)
    models = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = [name for name in models if name not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; models: {', '.join(MODELS)}")
    try:
        options = {name.strip(): int(value) for name, value in (item.split("=", 1) for item in args.option)}
    except ValueError:
        parser.error(f"--option takes NAME=INTEGER, not {' '.join(args.option)}")
    known = {option.name for name in models for option in MODELS[name].options}
    if set(options) - known:
        parser.error(f"no model of {', '.join(models)} has option {sorted(set(options) - known)[0]}")
    reasons = availability(settings)
    for name in [name for name in models if reasons[name] is not None]:
        print(f"skipping {name}: {reasons[name]}", file=sys.stderr)
    models = [name for name in models if reasons[name] is None]
    paths = sorted(p for p in args.meshes_dir.glob("*") if p.suffix.lower() in MESH_SUFFIXES) \
        if args.meshes_dir and args.meshes_dir.is_dir() else []
    specimens = [Specimen(path.stem, "", -1, "", lambda path=path: trimesh.load(path, force="mesh"))
                 for path in paths + args.meshes]
    if args.corpus:
        specimens += corpus(args.corpus, tuple(kind for kind in args.classes.split(",") if kind),
                            tuple(name for name in args.objects.split(",") if name))
    if not specimens:
        parser.error(f"no meshes: give mesh files, --meshes-dir DIR ({args.meshes_dir or 'none given'}) or --corpus")

    with tempfile.TemporaryDirectory(prefix="quality-") as scratch:
        workdir = args.workdir or Path(scratch)
        rows: list[Row] = []
        for specimen in specimens:
            rows += benchmark_mesh(specimen, workdir, models, args.device, args.res, args.samples,
                                   not args.no_baseline and o3d is not None, options)
    print(f"device: {args.device} ({torch.cuda.get_device_name() if args.device.startswith('cuda') else 'CPU'}, "
          f"{torch.get_num_threads()} torch threads), inputs {args.res}x{args.res}, {args.samples} samples"
          + "".join(f", {name}={value}" for name, value in options.items()))
    print(format_table(rows))
    print("\nper class:")
    print(class_summary(rows))
    print("\nworst cases:")
    for line in worst_cases(rows) + check_targets(rows):
        print(line)
    refinement = refinement_summary(rows)
    if refinement:
        print("\nnvdiffrec against its fusion start:")
        print("\n".join(refinement))
    if args.json:
        args.json.write_text(json.dumps([row.__dict__ for row in rows], indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
