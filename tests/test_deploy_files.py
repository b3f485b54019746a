"""Dockerfile and docker-compose.yml agree with the code: every command and variable they use exists."""

import importlib
import re
import subprocess
import sys
from pathlib import Path

import yaml
from huey.api import Huey

from worker.config import load_settings

REPO = Path(__file__).resolve().parents[1]
CONFIG_SOURCE = (REPO / "worker" / "config.py").read_text()
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_compose_has_web_worker_and_redis():
    assert {"web", "worker", "redis"} <= set(COMPOSE["services"])


def test_every_recon_variable_in_compose_is_read_by_the_settings():
    for name, service in COMPOSE["services"].items():
        for variable in service.get("environment", {}):
            if variable.startswith(("RECON_", "GRADIO_")):
                assert f'"{variable}"' in CONFIG_SOURCE, f"{name} sets {variable}, which worker/config.py never reads"


def test_the_compose_settings_give_a_redis_deployment_without_an_embedded_worker():
    web = load_settings(COMPOSE["services"]["web"]["environment"])
    worker = load_settings(COMPOSE["services"]["worker"]["environment"])
    assert web.uses_redis and worker.uses_redis and web.embedded_workers == 0
    assert web.queue_url == worker.queue_url


def test_the_worker_command_names_the_huey_instance_and_valid_consumer_flags():
    command = COMPOSE["services"]["worker"]["command"]
    assert command[0] == "huey_consumer"
    module, attribute = command[1].rsplit(".", 1)
    assert isinstance(getattr(importlib.import_module(module), attribute), Huey)
    from huey.consumer_options import OptionParserHandler

    options, _ = OptionParserHandler().get_option_parser().parse_args(command[2:])
    assert options.workers == 1 and options.worker_type == "thread"


def test_the_web_service_and_the_dockerfile_run_app_py():
    assert COMPOSE["services"]["web"]["command"] == ["python", "app.py"]
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r'^CMD \["python", "app.py"\]$', dockerfile, re.M)
    assert re.search(r"^FROM nvidia/cuda:\S+", dockerfile, re.M)
    assert "requirements.txt" in dockerfile
    assert "gpu" in str(COMPOSE["services"]["worker"]["deploy"]["resources"]["reservations"]["devices"])


def test_the_dockerfiles_python_steps_run():
    steps = re.findall(r'^RUN python -c "(.+)"$', (REPO / "Dockerfile").read_text(), re.M)
    assert steps
    for step in steps:
        subprocess.run([sys.executable, "-c", step], cwd=REPO, check=True, timeout=300)
