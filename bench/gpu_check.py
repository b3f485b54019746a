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
from datetime import datetime
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.gpu_parity import part_parity  # noqa: E402
from bench.gpu_queue import part_queue  # noqa: E402
from bench.gpu_run import (  # noqa: E402
    BUNDLE_DIR,
    EXAMPLE_MESHES,
    GIB,
    LIMIT_S,
    MESHES,
    MIN_PART_S,
    OUT_OF_TIME,
    ROOT,
    WHEELS,
    Row,
    Run,
    Table,
    ended,
    run_logged,
)

# The project's modules (and trimesh, huey, httpx) are imported where they are used: setup may first have to
# install what they need.

MESH_FILES = {  # the benchmark meshes, with the files each needs beside it (licences: the README.md beside them)
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
PARTS = ("parity", "pytest", "queue", "quality")  # after setup, which always runs: the others need it


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
    folder = next((folder for folder in (MESHES, EXAMPLE_MESHES) if (folder / "spot.obj").exists()), None)
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
    parser.add_argument("--meshes-from", type=Path, help="--prepare: where the meshes are (required with it)")
    args = parser.parse_args(argv)
    if args.prepare:
        return prepare(args.meshes_from) if args.meshes_from else parser.error("--prepare needs --meshes-from DIR")
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
