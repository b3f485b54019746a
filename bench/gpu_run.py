"""How the GPU check runs (bench/gpu_check.py): its table of rows, rewritten after every row, its time budget, and
subprocesses run under a time limit with their output in a log."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import asdict, astuple, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUNDLE_DIR = ROOT / ".gpu-bundle"  # what --prepare gathers and the device run carries: wheels and meshes
WHEELS = BUNDLE_DIR / "wheels"
MESHES = BUNDLE_DIR / "meshes"
EXAMPLE_MESHES = ROOT / "examples" / "meshes"  # spot, fandisk, cow, teapot (licences in its README.md)
EXAMPLE = ROOT / "examples" / "spot"
GIB = 1 << 30
LIMIT_S = {"build": 300, "parity": 120, "pytest": 240, "services": 120, "job": 240, "mesh": 180}
MIN_PART_S = 20  # a part (or a mesh, or a queued job) is not started with less of the budget left
OUT_OF_TIME = "the overall budget (--budget-s) is spent"


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


