"""Every setting of the service, read from the environment in this one place.

Defaults run everything on one machine with an embedded SQLite queue; setting
RECON_QUEUE to a redis:// URL turns the same code into a multi-host deployment.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping


class ConfigError(ValueError):
    """A setting or a file the settings name is unusable; the sentence says how to fix it."""


def _int(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{key} must be a whole number, got {raw!r}") from None


def _float(env: Mapping[str, str], key: str, default: float) -> float:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{key} must be a number, got {raw!r}") from None


def _choice(env: Mapping[str, str], key: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.get(key) or default
    if value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(choices)}, got {value!r}")
    return value


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    queue_url: str
    embedded_workers: int
    max_file_mb: int
    max_pixels: int
    heartbeat_interval_s: float
    heartbeat_timeout_s: float
    cancel_confirm_window_s: float
    retention_hours: float
    device: str
    torch_threads: int
    server_name: str
    server_port: int
    reconviagen_model: str
    render_backend: str
    nvdiffrec_cpu_budget_s: float
    default_model: str
    max_queued: int
    rate_limit_per_minute: int
    queue_secret: str
    job_attempts: int
    job_time_limit_s: float
    disk_quota_mb: int
    upload_quota_mb: int
    client_quota_mb: int
    min_free_disk_mb: int
    forwarded_allow_ips: str
    body_timeout_s: float
    max_connections: int
    upload_folder: Path  # Gradio's (GRADIO_TEMP_DIR): the page's uploads and the results it serves
    # The page's "start from a mesh" section: the mesh upload's size (a zip's unpacked total too), its
    # triangles (checked from the file's header before it is built), and the seconds a render may take.
    max_mesh_mb: int = 20
    max_mesh_triangles: int = 500_000
    mesh_render_time_limit_s: float = 60.0

    @property
    def uses_redis(self) -> bool:
        return self.queue_url.startswith(("redis://", "rediss://", "unix://"))

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "queue.db"

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"

    @property
    def max_file_bytes(self) -> int:
        return self.max_file_mb * 1024 * 1024

    @property
    def max_request_bytes(self) -> int:
        """Twelve files at the size limit, a cameras.json and the multipart framing."""
        return 13 * self.max_file_bytes + 1024 * 1024


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    queue_url = env.get("RECON_QUEUE", "sqlite")
    uses_redis = queue_url.startswith(("redis://", "rediss://", "unix://"))
    return Settings(
        data_dir=Path(env.get("RECON_DATA_DIR", "data")).resolve(),
        queue_url=queue_url,
        embedded_workers=_int(env, "RECON_EMBEDDED_WORKERS", 0 if uses_redis else 1),
        max_file_mb=_int(env, "RECON_MAX_FILE_MB", 20),
        max_pixels=_int(env, "RECON_MAX_PIXELS", 1024 * 1024),
        heartbeat_interval_s=_float(env, "RECON_HEARTBEAT_INTERVAL_S", 1.0),
        heartbeat_timeout_s=_float(env, "RECON_HEARTBEAT_TIMEOUT_S", 15.0),
        cancel_confirm_window_s=_float(env, "RECON_CANCEL_CONFIRM_WINDOW_S", 120.0),
        retention_hours=_float(env, "RECON_RETENTION_HOURS", 24.0),
        device=env.get("RECON_DEVICE", "auto"),
        torch_threads=_int(env, "RECON_TORCH_THREADS", 0),
        server_name=env.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=_int(env, "GRADIO_SERVER_PORT", 7860),
        reconviagen_model=env.get("RECON_RECONVIAGEN_MODEL", "Stable-X/trellis-vggt-v0-2"),
        render_backend=_choice(env, "RECON_RENDER_BACKEND", "auto", ("auto", "nvdiffrast", "reference")),
        nvdiffrec_cpu_budget_s=_float(env, "RECON_NVDIFFREC_CPU_BUDGET_S", 105.0),
        default_model=env.get("RECON_DEFAULT_MODEL", ""),
        max_queued=_int(env, "RECON_MAX_QUEUED", 100),
        rate_limit_per_minute=_int(env, "RECON_RATE_LIMIT_PER_MINUTE", 30),
        queue_secret=env.get("RECON_QUEUE_SECRET", ""),
        job_attempts=max(1, _int(env, "RECON_JOB_ATTEMPTS", 2)),
        job_time_limit_s=_float(env, "RECON_JOB_TIME_LIMIT_S", 600.0),
        disk_quota_mb=_int(env, "RECON_DISK_QUOTA_MB", 8192),
        upload_quota_mb=_int(env, "RECON_UPLOAD_QUOTA_MB", 2048),
        client_quota_mb=_int(env, "RECON_CLIENT_QUOTA_MB", 1024),
        min_free_disk_mb=_int(env, "RECON_MIN_FREE_DISK_MB", 512),
        forwarded_allow_ips=env.get("RECON_FORWARDED_ALLOW_IPS", ""),
        body_timeout_s=_float(env, "RECON_BODY_TIMEOUT_S", 30.0),
        max_connections=_int(env, "RECON_MAX_CONNECTIONS", 1000),
        upload_folder=Path(env.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio").resolve(),
        max_mesh_mb=_int(env, "RECON_MAX_MESH_MB", 20),
        max_mesh_triangles=_int(env, "RECON_MAX_MESH_TRIANGLES", 500_000),
        mesh_render_time_limit_s=_float(env, "RECON_MESH_RENDER_TIME_LIMIT_S", 60.0),
    )


settings = load_settings()
