"""Stand-in for trellis.pipelines (see trellis/__init__.py).

pipeline.json in the weights directory configures it:
  {"name": "TrellisVGGTTo3DPipeline",
   "standin": {"mesh": "reference.ply", "scale": 0.6, "rotation_deg": [4, -7, 3], "shift": [0.02, -0.05, 0.01],
               "step_s": 0.01, "fail": null}}
The mesh is centred on its bounding box, scaled, rotated and shifted, then written Z-up as upstream meshes are.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image
from scipy.spatial.transform import Rotation

Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # Y-up (x, y, z) -> Z-up (x, -z, y)


@dataclass
class StandInMesh:
    vertices: np.ndarray
    faces: np.ndarray


@dataclass
class StandInGaussian:
    colour: tuple[int, int, int]


class StandInSampler:
    """Steps like upstream's flow samplers: one sample_once call per step."""

    def __init__(self, step_s: float) -> None:
        self.step_s = step_s
        self.steps_done = 0

    def sample_once(self, step: int) -> int:
        time.sleep(self.step_s)
        self.steps_done += 1
        return step

    def sample(self, steps: int) -> None:
        for step in range(steps):
            self.sample_once(step)


class TrellisVGGTTo3DPipeline:
    def __init__(self, config: dict, directory: Path) -> None:
        self.config = config
        self.mesh = trimesh.load(directory / config["mesh"], force="mesh", process=False)
        self.sparse_structure_sampler = StandInSampler(config.get("step_s", 0.0))
        self.slat_sampler = StandInSampler(config.get("step_s", 0.0))
        self.calls: list[dict] = []
        self.on_cuda = False

    @staticmethod
    def from_pretrained(path: str) -> "TrellisVGGTTo3DPipeline":
        directory = Path(path)
        config = json.loads((directory / "pipeline.json").read_text())
        return TrellisVGGTTo3DPipeline(config["standin"], directory)

    def cuda(self) -> None:
        self.on_cuda = True

    def preprocess_image(self, image: Image.Image) -> Image.Image:
        self.calls.append({"preprocess_image": image.size})
        return image

    def normalised_vertices(self) -> np.ndarray:
        vertices = np.asarray(self.mesh.vertices, dtype=np.float64)
        lo, hi = vertices.min(axis=0), vertices.max(axis=0)
        rotation = Rotation.from_euler("xyz", self.config["rotation_deg"], degrees=True).as_matrix()
        moved = (vertices - (lo + hi) / 2) * self.config["scale"] @ rotation.T + self.config["shift"]
        return moved @ Z_UP.T

    def run(self, image, seed=42, formats=("mesh",), preprocess_image=True, sparse_structure_sampler_params=None,
            slat_sampler_params=None, mode="stochastic", **kwargs):
        self.calls.append({"run": {
            "images": [(item.mode, item.size) for item in image], "seed": seed, "formats": list(formats),
            "preprocess_image": preprocess_image, "sparse_structure_sampler_params": sparse_structure_sampler_params,
            "slat_sampler_params": slat_sampler_params, "mode": mode, "other": sorted(kwargs),
        }})
        if self.config.get("fail"):
            raise RuntimeError(self.config["fail"])
        self.sparse_structure_sampler.sample(sparse_structure_sampler_params["steps"])
        self.slat_sampler.sample(slat_sampler_params["steps"])
        outputs = {"gaussian": [StandInGaussian((200, 120, 40))],
                   "mesh": [StandInMesh(self.normalised_vertices(), np.asarray(self.mesh.faces))]}
        return outputs, None, None
