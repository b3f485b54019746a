"""Leftovers: staging folders of submissions that never finished (a crash, a kill) must not stay forever.

worker.jobs.uploads.store_inputs stages a job's inputs in <data>/jobs/<job id>/.incoming-XXXX (beside the final
inputs/ folder) and moves them into place in one step; a process killed in between leaves the staging
folder behind, with no job record to expire it.

The leftovers are planted in the "default" server's data folder before it starts (PREPARE), and a watcher
notes when they disappear, so the bound holds from the server's start even when this module runs later.
"""

from __future__ import annotations

import os
import threading
import time

from tests.security.live import Server

HOUR = 3600
SWEEP_BOUND_S = 15  # the reaper's slow sweep runs every 10 s
WATCH_S = 600
LEFTOVERS = ("jobs/k3m8xq2p/.incoming-abc123", "jobs/.incoming-xyz")
gone_at: dict[str, float] = {}


def _plant_leftovers(server: Server) -> None:
    """Before the server starts: an hour-old staging folder, holding a file, inside a job folder with no job
    record, and one at the jobs level; then watch them."""
    old = time.time() - HOUR
    folders = [server.data_dir / relative for relative in LEFTOVERS]
    for folder in folders:
        folder.mkdir(parents=True)
        (folder / "view_0.png").write_bytes(os.urandom(4096))
        os.utime(folder / "view_0.png", (old, old))
        os.utime(folder, (old, old))
    os.utime(server.jobs_dir / "k3m8xq2p", (old, old))

    def watch() -> None:
        deadline = time.monotonic() + WATCH_S
        while time.monotonic() < deadline and len(gone_at) < len(folders):
            for relative, folder in zip(LEFTOVERS, folders):
                if relative not in gone_at and not folder.exists():
                    gone_at[relative] = time.monotonic()
            time.sleep(0.1)

    threading.Thread(target=watch, name="leftovers-watch", daemon=True).start()


SERVERS = ("default",)
PREPARE = {"default": _plant_leftovers}


def test_hour_old_staging_folders_without_a_job_are_swept(servers):
    """Attack (or accident): submissions cut off between staging and the final move, over and over, each leaving
    up to 12 x RECON_MAX_FILE_MB behind. Must hold: staging folders an hour old with no job record,
    <data>/jobs/<id>/.incoming-* and <data>/jobs/.incoming-*, are gone within 15 s of the server's start."""
    server = servers.get("default")
    assert server.ready_at is not None
    bound = server.ready_at + SWEEP_BOUND_S
    while time.monotonic() < bound + 0.5 and len(gone_at) < len(LEFTOVERS):
        time.sleep(0.1)
    late = {relative: (f"{gone_at[relative] - server.ready_at:.1f} s" if relative in gone_at else "never")
            for relative in LEFTOVERS if gone_at.get(relative, float("inf")) > bound}
    assert not late, f"gone after the server started (bound {SWEEP_BOUND_S} s): {late}"
    server.assert_responsive()
