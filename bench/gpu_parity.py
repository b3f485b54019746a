"""The GPU check's parity part: nvdiffrast against the PyTorch reference backend on the same scenes, both on
CUDA, in a process of its own (`python bench/gpu_parity.py OUT.json`)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.gpu_run import EXAMPLE_MESHES, LIMIT_S, MESHES, Row, Run, ended, run_logged  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PARITY_RES = 256


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
    spot_path = next((folder / "spot.obj" for folder in (MESHES, EXAMPLE_MESHES) if (folder / "spot.obj").exists()),
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
    code, seconds = run_logged([sys.executable, __file__, str(path)], run.log("parity"),
                               run.time_for(LIMIT_S["parity"]))
    if code != 0 or not path.exists():
        run.table.add(Row("parity", "nvdiffrast vs reference", "FAILED", ended(code, seconds), "parity.log"))
        return
    results = json.loads(path.read_text())
    run.table.details["parity"] = results
    scenes = sorted({result["scene"] for result in results})
    run.table.add(Row("parity", "scenes", "info", f"{', '.join(scenes)} x {len(results) // len(scenes)} cameras, "
                      f"{PARITY_RES}x{PARITY_RES}, in {seconds:.0f} s", "worst over all; why these limits: "
                      "part_parity's docstring in bench/gpu_parity.py"))
    run.table.add(*parity_rows(worst(results)))




if __name__ == "__main__":
    parity_main(Path(sys.argv[1]))
