"""The model registry: what each model is, what it needs, its options, and whether it can run here.

The UI dropdown, the REST validation and the worker all read this one table.
Availability is computed once per process; models are loaded once per worker.
"""

from __future__ import annotations

import logging
import os
import reprlib
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

from ..config import Settings
from ..errors import ModelUnavailableError, ReconError

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from ..recon.inputs import ReconInputs
    from ..recon.report import ModelReport
    from ..recon.stages import Progress


class Reconstructor(Protocol):
    """Writes the mesh to `glb` (a path the job's files chose) and returns its report."""

    def __call__(self, inputs: "ReconInputs", glb: Path, progress: "Progress", options: dict, device: str
                 ) -> "ModelReport": ...


@dataclass(frozen=True)
class OptionSpec:
    name: str
    label: str
    default: int
    minimum: int
    maximum: int
    help: str
    cpu_maximum: int | None = None  # a CPU worker's ceiling: past it one job needs over 2 GB (bench/worst_case.py)
    zero_is_unbounded: bool = False

    def on_cpu(self, value: int) -> int:
        """The value a CPU worker uses: the requested one, or the ceiling when it asks for more."""
        if self.cpu_maximum is None:
            return value
        unbounded = self.zero_is_unbounded and value == 0
        return self.cpu_maximum if unbounded or value > self.cpu_maximum else value

    def resolve(self, raw: object) -> int:
        if raw is None:
            return self.default
        if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
            raise ReconError(f"{self.name} must be a whole number", field=f"options.{self.name}")
        try:
            value = int(raw)
        except (ValueError, OverflowError):
            raise ReconError(f"{self.name} must be a whole number, got {reprlib.repr(raw)}", field=f"options.{self.name}") from None
        if isinstance(raw, float) and raw != value or not self.minimum <= value <= self.maximum:
            raise ReconError(
                f"{self.name} must be a whole number from {self.minimum} to {self.maximum}, got {reprlib.repr(raw)}",
                field=f"options.{self.name}",
            )
        return value


@dataclass(frozen=True)
class ModelSpec:
    name: str
    label: str
    description: str
    needs: str
    options: tuple[OptionSpec, ...]
    unavailable_reason: Callable[[Settings], str | None]
    load: Callable[[Settings], Reconstructor]
    check_options: Callable[[dict], None] = lambda options: None  # rules across the range of one OptionSpec
    guide: str = "installing-on-a-gpu-host"  # the README section (its anchor) on what the model needs

    def fit_to_device(self, options: dict, device: str) -> tuple[dict, list[str]]:
        """The options a job runs with on `device`, and a warning for each one lowered to a CPU's ceiling."""
        if device.startswith("cuda"):
            return options, []
        fitted, notes = dict(options), []
        for option in self.options:
            asked = fitted.get(option.name, option.default)
            fitted[option.name] = option.on_cpu(asked)
            if fitted[option.name] != asked:
                shown = "0 (no limit)" if asked == 0 else asked
                notes.append(f"{option.name} {shown} is more than a CPU worker runs; it used {fitted[option.name]}")
        return fitted, notes

    def resolve_options(self, raw: dict | None) -> dict:
        raw = dict(raw or {})
        known = {option.name for option in self.options}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ReconError(
                f"{self.name} has no option {unknown[0]!r}; its options are {', '.join(sorted(known)) or 'none'}",
                field=f"options.{unknown[0]}",
            )
        resolved = {option.name: option.resolve(raw.get(option.name)) for option in self.options}
        self.check_options(resolved)
        return resolved


def _load_fusion(config: Settings) -> Reconstructor:
    from ..recon.fusion import reconstruct_fusion
    from ..recon.prelude import compile_ahead

    compile_ahead()

    def run(inputs: "ReconInputs", glb: Path, progress: "Progress", options: dict, device: str) -> "ModelReport":
        return reconstruct_fusion(inputs, glb, progress, device=device, **options)

    return run


MIN_TEXTURE_SIZE = 512


def _check_texture_size(options: dict) -> None:
    """texture_size is 0 (vertex colours) or a real texture size."""
    if 0 < options["texture_size"] < MIN_TEXTURE_SIZE:
        raise ReconError(
            f"texture_size must be 0 (vertex colours, no texture) or from {MIN_TEXTURE_SIZE} to 4096, "
            f"got {options['texture_size']}",
            field="options.texture_size",
        )


TEXTURE_SIZE = OptionSpec("texture_size", "Texture size", 1024, 0, 4096,
                          f"pixels along each side of the base-colour texture, {MIN_TEXTURE_SIZE}-4096 (a CPU worker: "
                          "at most 2048); 0 = no texture, vertex colours", cpu_maximum=2048)

FUSION_OPTIONS = (
    OptionSpec("grid_resolution", "Grid resolution", 224, 128, 512, "voxels along the object's longest side"),
    OptionSpec("max_error_ppm", "Simplification tolerance", 25, 0, 100_000,
               "simplification stops before a merged vertex would lie farther (root mean square) from the surface "
               "it replaces than this many millionths of the object's bounding-box diagonal (25 = 0.0025%): a "
               "simple shape gets few triangles, a detailed one keeps its detail; 0 = only the triangle budget"),
    OptionSpec("target_triangles", "Triangle budget", 500_000, 0, 5_000_000,
               "at most this many triangles, whatever the tolerance allows; 0 = no limit (with a tolerance of 0 "
               "too, every triangle is kept; a CPU worker: at most 500,000)", cpu_maximum=500_000,
               zero_is_unbounded=True),
    TEXTURE_SIZE,
)

FUSION = ModelSpec(
    name="fusion",
    label="Fusion (fast)",
    description="Fuses the six depth renders into a watertight mesh, simplifies it and bakes a texture from the "
                "views; seconds on a CPU.",
    needs="nothing beyond the base install (CPU or CUDA)",
    options=FUSION_OPTIONS,
    unavailable_reason=lambda config: None,
    load=_load_fusion,
    check_options=_check_texture_size,
)


def _load_nvdiffrec(config: Settings) -> Reconstructor:
    from ..recon.nvdiffrec import reconstruct_nvdiffrec
    from ..recon.prelude import compile_ahead

    compile_ahead()

    def run(inputs: "ReconInputs", glb: Path, progress: "Progress", options: dict, device: str) -> "ModelReport":
        return reconstruct_nvdiffrec(inputs, glb, progress, device=device, backend=config.render_backend,
                                     cpu_budget_s=config.nvdiffrec_cpu_budget_s, **options)

    return run


NVDIFFREC = ModelSpec(
    name="nvdiffrec",
    label="nvdiffrec (refined)",
    description="Starts from the fusion mesh and its baked texture (made with the same options) and refines the "
                "texture (and, if asked, the shape) by differentiable rendering until they match the six views, "
                "keeping the start where a view held out of it says that does not help; about two minutes on a "
                "CPU, faster on CUDA.",
    needs="nothing beyond the base install; on CUDA it renders with nvdiffrast, elsewhere with a PyTorch renderer",
    options=(
        OptionSpec("iterations", "Iterations", 0, 0, 5000,
                   "optimisation steps over all six views; 0 = automatic (CPU: 200, or as many as fit in about "
                   "105 s; CUDA: 1000)"),
        OptionSpec("render_resolution", "Render resolution", 0, 0, 2048,
                   "pixels along the longer image side while optimising, at most the inputs'; 0 = automatic "
                   "(CPU: 512, CUDA: 1024); a CPU worker: at most 512", cpu_maximum=512),
        OptionSpec("refine_shape", "Refine the shape", 0, 0, 1,
                   "0 = colours only: fusion's vertices stay; 1 = shape and colours: the vertices move too, kept "
                   "only where a view held out of refinement confirms it. For a coarse start (a low grid "
                   "resolution); on the default grid moving them cost novel views up to 0.6 dB on thin rods and "
                   "sheets"),
    ) + FUSION_OPTIONS,
    unavailable_reason=lambda config: None,
    load=_load_nvdiffrec,
    check_options=_check_texture_size,
)


def _reconviagen_unavailable(config: Settings) -> str | None:
    from ..recon.reconviagen import unavailable_reason

    return unavailable_reason(config.reconviagen_model)


def _load_reconviagen(config: Settings) -> Reconstructor:
    from ..recon.devices import resolve_device
    from ..recon.reconviagen import ReconViaGen

    return ReconViaGen(config.reconviagen_model, resolve_device(config.device))


RECONVIAGEN = ModelSpec(
    name="reconviagen",
    label="ReconViaGen (generative)",
    description="Generates a textured mesh from the views with ReconViaGen (TRELLIS + VGGT), then aligns it to the "
                "depth renders; fills in what no view saw.",
    needs="a CUDA GPU, the trellis package of ReconViaGen and its weights on local disk (RECON_RECONVIAGEN_MODEL)",
    options=(
        OptionSpec("seed", "Seed", 1, 0, 2**31 - 1, "random seed of the generation"),
        OptionSpec("texture_size", "Texture size", 1024, 512, 2048, "pixels along each side of the baked texture"),
    ),
    unavailable_reason=_reconviagen_unavailable,
    load=_load_reconviagen,
    guide="installing-reconviagen",
)

MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in (FUSION, NVDIFFREC, RECONVIAGEN)}
PREFERENCE = ("reconviagen", "nvdiffrec", "fusion")


def preference(config: Settings) -> tuple[str, ...]:
    """Model names, best first. Without CUDA nvdiffrec takes minutes where fusion takes seconds, so there it
    ranks after fusion: a job that names no model stays fast."""
    from ..recon.devices import resolve_device

    if resolve_device(config.device).startswith("cuda"):
        return PREFERENCE
    return tuple(name for name in PREFERENCE if name != "nvdiffrec") + ("nvdiffrec",)


@cache
def availability(config: Settings) -> dict[str, str | None]:
    """Model name -> None when it can run here, else the reason it cannot."""
    return {name: spec.unavailable_reason(config) for name, spec in MODELS.items()}


def available_models(config: Settings) -> list[str]:
    return [name for name, reason in availability(config).items() if reason is None]


def best_available_model(config: Settings) -> str:
    """RECON_DEFAULT_MODEL when it can run here, else the first available model in order of preference."""
    if config.default_model and availability(config).get(config.default_model, "unknown") is None:
        return config.default_model
    return next(name for name in preference(config) if availability(config)[name] is None)


def require_model(name: str | None, config: Settings) -> ModelSpec:
    """The spec of a model that can run here, or a ModelUnavailableError that says which can."""
    name = name or best_available_model(config)
    choices = ", ".join(available_models(config))
    if name not in MODELS:
        raise ModelUnavailableError(f"unknown model {name!r}; available models: {choices}", field="model_type")
    reason = availability(config)[name]
    if reason is not None:
        raise ModelUnavailableError(
            f"model {name!r} cannot run on this deployment: {reason} (what it needs: the README's section "
            f"/README.md#{MODELS[name].guide}); "
            f"available models: {choices}",
            field="model_type",
        )
    return MODELS[name]


_loaded: dict[str, Reconstructor] = {}
_load_lock = threading.Lock()


def get_reconstructor(name: str, config: Settings) -> Reconstructor:
    """Load a model once per worker process, however many worker threads ask."""
    with _load_lock:
        if name not in _loaded:
            log.info("loading model %s (pid %d)", name, os.getpid())
            _loaded[name] = require_model(name, config).load(config)
        return _loaded[name]


def load_available_models(config: Settings) -> list[str]:
    for name in available_models(config):
        get_reconstructor(name, config)
    return sorted(_loaded)
