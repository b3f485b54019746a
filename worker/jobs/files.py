"""Where a job's files live. Every path is built from a validated job id, never from client input."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from .record import is_job_id

RESULT_NAME = "model.glb"
# The result in each download format: the GLB as the worker wrote it, the others made from it on first request.
RESULT_NAMES = {"glb": RESULT_NAME, "obj": "model-obj.zip", "ply": "model.ply", "stl": "model.stl", "usdz": "model.usdz"}
REPORT_NAME = "report.json"
COMPARISON_NAME = "comparison.png"
TURNTABLE_NAME = "turntable.webp"
OUTPUT_NAMES = {"result": RESULT_NAME, "report": REPORT_NAME, "comparison": COMPARISON_NAME,
                "turntable": TURNTABLE_NAME}
VIEW_NAMES = tuple(f"view_{index}.png" for index in range(6))
DEPTH_NAMES = tuple(f"depth_{index}.png" for index in range(6))
CAMERAS_NAME = "cameras.json"


def download_name(job_id: str, fmt: str) -> str:
    """What a downloaded result is called: the job id and the format's suffix, e.g. k3m8xq2p-obj.zip."""
    return job_id + RESULT_NAMES[fmt].removeprefix("model")


@dataclass(frozen=True)
class JobFiles:
    root: Path

    @classmethod
    def of(cls, jobs_dir: Path, job_id: str) -> "JobFiles":
        if not is_job_id(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        return cls(Path(jobs_dir) / job_id)

    @property
    def inputs(self) -> Path:
        return self.root / "inputs"

    def stored_inputs(self) -> tuple[list[Path], list[Path], dict | None]:
        """The stored views and depth renders in slot order, and the parsed cameras.json if one was given."""
        cameras = self.inputs / CAMERAS_NAME
        return ([self.inputs / name for name in VIEW_NAMES], [self.inputs / name for name in DEPTH_NAMES],
                json.loads(cameras.read_text()) if cameras.exists() else None)

    @property
    def output(self) -> Path:
        return self.root / "output"

    @property
    def partial(self) -> Path:
        """Outputs under construction; moved to `output` in one step when the job completes."""
        return self.root / "output.partial"

    def start_partial(self) -> None:
        """An empty `partial` folder: whatever an earlier, abandoned run left there is gone."""
        self.discard_partial()
        self.partial.mkdir(parents=True)

    @property
    def partial_result(self) -> Path:
        """Where a model writes its mesh while it runs."""
        return self.partial / RESULT_NAME

    @property
    def partial_report(self) -> Path:
        return self.partial / REPORT_NAME

    @property
    def partial_comparison(self) -> Path:
        return self.partial / COMPARISON_NAME

    @property
    def partial_turntable(self) -> Path:
        return self.partial / TURNTABLE_NAME

    @property
    def result(self) -> Path:
        return self.output / RESULT_NAME

    def result_as(self, fmt: str) -> Path:
        """The result in `fmt`, a key of RESULT_NAMES (checked by the caller: a client's word is not a name)."""
        return self.output / RESULT_NAMES[fmt]

    @property
    def report(self) -> Path:
        return self.output / REPORT_NAME

    def discard_partial(self) -> None:
        shutil.rmtree(self.partial, ignore_errors=True)

    def discard_inputs(self) -> None:
        """A job that ends cancelled or failed keeps no inputs: they are the bulk of its bytes."""
        shutil.rmtree(self.inputs, ignore_errors=True)

    def discard_all(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
