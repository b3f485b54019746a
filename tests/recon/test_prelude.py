"""What every model does first. Here: compile_ahead leaves a job nothing to compile."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from worker.recon.render_inputs import render_inputs

from . import scenes
from .test_holes import open_scan

ROOT = Path(__file__).resolve().parents[2]
# In a fresh process: every Numba function of the engine and how many compiled versions it holds, after
# compile_ahead and after fusion jobs on the given inputs (a solid, and an open scan built as a thin shell).
SCRIPT = """
import json, sys
from pathlib import Path
from numba.core.dispatcher import Dispatcher
from worker.recon.prelude import compile_ahead

def versions():
    return {f"{name}.{attribute}": len(value.signatures) for name, module in list(sys.modules.items())
            if name.startswith("worker.") for attribute, value in vars(module).items() if isinstance(value, Dispatcher)}

compile_ahead()  # alone, as the Docker image runs it: the modules a job imports next must compile nothing either
before = versions()
from worker.recon.fusion import reconstruct_fusion
from tests.recon.scenes import load
for directory in sys.argv[1:]:
    reconstruct_fusion(load(Path(directory)), Path(directory) / "out.glb", lambda f, s: None,
                       grid_resolution=48)
print(json.dumps([before, versions()]))
"""


def test_after_compile_ahead_a_fusion_job_compiles_nothing(tmp_path):
    solid, scan = tmp_path / "box", tmp_path / "scan"
    render_inputs(scenes.box(), solid, res=96)
    render_inputs(open_scan(), scan, res=96, normalize=False)
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(solid), str(scan)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    before, after = json.loads(done.stdout.splitlines()[-1])
    assert "worker.recon.snap._offsets" in before and "worker.recon.simplify._sweep" in before
    assert {name: count for name, count in after.items() if count != before.get(name)} == {}
