"""The queue secret signs every task message: made once, complete or not at all, and refused when others may write it."""

import os
import threading

import pytest

from worker.config import ConfigError, load_settings
from worker.queue.huey_app import SECRET_FILE, queue_secret


def test_processes_starting_together_on_a_fresh_volume_agree_on_one_private_secret(config):
    secrets = []
    threads = [threading.Thread(target=lambda: secrets.append(queue_secret(config))) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(secrets)) == 1 and len(secrets[0]) == 64
    path = config.data_dir / SECRET_FILE
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert sorted(p.name for p in config.data_dir.iterdir()) == [SECRET_FILE], "no staging file is left"


def test_a_secret_others_can_write_is_refused_with_the_fix(config):
    queue_secret(config)
    path = config.data_dir / SECRET_FILE
    os.chmod(path, 0o666)
    with pytest.raises(ConfigError, match=f"chmod 600 {path}"):
        queue_secret(config)


def test_an_empty_secret_is_refused_in_words(config):
    config.data_dir.mkdir(parents=True, exist_ok=True)
    (config.data_dir / SECRET_FILE).touch(mode=0o600)
    with pytest.raises(ConfigError, match="is empty"):
        queue_secret(config)


def test_the_setting_wins_over_the_file(tmp_path):
    assert queue_secret(load_settings({"RECON_DATA_DIR": str(tmp_path), "RECON_QUEUE_SECRET": "s3cret"})) == "s3cret"
