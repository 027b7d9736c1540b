"""docker/compose.yaml and docker/Dockerfile agree with the project.

No CI job has a Docker engine, so the deployment files are checked here, statically: the
commands they run exist and are the commands of gridplatform/processes.py, the image holds every
package, and no secret is written into them.
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from celery import Celery
from celery.app.utils import find_app
from django.conf import settings
from django.core.management import get_commands

from gridplatform.processes import MANAGE_PY, commands

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker" / "compose.yaml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
# Where the image puts the code; the processes' var_dir is settings.VAR_DIR there.
APP_DIR = "/app"
APP_SERVICES = ("migrate", "web", "worker", "beat")
SECRETS = ("SECRET_KEY", "KEY_ENCRYPTION_KEY")


def compose() -> dict[str, Any]:
    with COMPOSE.open() as file:
        return yaml.safe_load(file)


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def service_commands() -> dict[str, list[str]]:
    """Each service's command; every command is an exec-form list of strings."""
    result = {}
    for name, service in services().items():
        if "command" not in service:
            continue
        command = service["command"]
        assert isinstance(command, list), f"{name}: command must be an exec-form list"
        assert all(isinstance(arg, str) for arg in command), f"{name}: {command}"
        result[name] = command
    return result


def process_commands() -> dict[str, list[str]]:
    """The processes of the run command, with the var_dir they have inside the image."""
    processes = commands(
        host="0.0.0.0",  # noqa: S104
        port=8000,
        var_dir=Path(APP_DIR) / "var",
        behind_proxy=True,
        validators=4,
    )
    # The run command names manage.py by its path; in the image it is ./manage.py in /app.
    return {
        name: [("manage.py" if arg == str(MANAGE_PY) else arg) for arg in argv]
        for name, argv in processes.items()
    }


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions = []
    logical = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        keyword, _, arguments = logical.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        logical = ""
    assert not logical, "the Dockerfile ends inside a continued line"
    return instructions


def copied_sources() -> set[str]:
    sources = set()
    for keyword, arguments in dockerfile_instructions():
        if keyword != "COPY":
            continue
        words = [word for word in arguments.split() if not word.startswith("--")]
        sources.update(word.rstrip("/") for word in words[:-1])
    return sources


def ignored_by_docker() -> set[str]:
    """The root entries .dockerignore keeps out of the build context (tests, benchmarks)."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and "/" not in line and "*" not in line}


def top_level_packages() -> set[str]:
    """The project's own packages: the root directories with an __init__.py that the image needs."""
    return {
        path.name for path in ROOT.iterdir() if path.is_dir() and (path / "__init__.py").is_file()
    } - ignored_by_docker()


def test_the_image_leaves_out_tests_and_benchmarks() -> None:
    assert {"tests", "bench"} <= ignored_by_docker()


def test_it_runs_only_commands_the_project_has() -> None:
    available = get_commands()
    manage_commands = {
        name: command[2]
        for name, command in service_commands().items()
        if command[:2] == ["python", "manage.py"]
    }
    assert manage_commands == {
        "migrate": "migrate",
        **{f"validator-{k}": "run_validator" for k in range(4)},
    }
    for name, command in manage_commands.items():
        assert command in available, f"{name} runs `manage.py {command}`, which does not exist"


def test_it_runs_the_processes_of_the_run_command() -> None:
    expected = {name: argv[1:] for name, argv in process_commands().items()}
    python_modules = {
        name: command
        for name, command in service_commands().items()
        if command[1:3] in (["-m", "daphne"], ["-m", "celery"])
    }
    assert set(python_modules) == {"web", "worker", "beat"}
    for name, command in python_modules.items():
        assert command[0] == "python", f"{name}: {command}"
        assert command[1:] in expected.values(), (
            f"{name} runs {command[1:]}, which is none of the processes of "
            f"gridplatform/processes.py: {expected}"
        )


def test_it_has_a_service_for_every_process() -> None:
    running = service_commands()
    for name, argv in process_commands().items():
        assert name in running, f"no compose service runs the {name} process"
        assert running[name] == ["python", *argv[1:]]


def test_it_imports_the_asgi_application_and_the_celery_app() -> None:
    web = service_commands()["web"]
    target = web[-1]
    module_name, _, attribute = target.partition(":")
    assert f"{module_name}.{attribute}" == settings.ASGI_APPLICATION
    application = getattr(importlib.import_module(module_name), attribute)
    assert callable(application)

    for name in ("worker", "beat"):
        command = service_commands()[name]
        app_name = command[command.index("-A") + 1]
        app = importlib.import_module(app_name).app
        assert isinstance(app, Celery)
        assert app.main == "gridplatform"
        # What `celery -A <app_name>` itself resolves to.
        assert find_app(app_name) is app, name


def test_it_builds_an_image_with_every_package_and_debug_off() -> None:
    packages = top_level_packages()
    assert {"gridplatform", "ledger", "market", "meters", "supervision", "dashboards"} <= packages
    sources = copied_sources()
    missing = (packages | {"manage.py", "templates", "static", "pyproject.toml"}) - sources
    assert not missing, f"the Dockerfile does not COPY {sorted(missing)}"

    text = DOCKERFILE.read_text()
    assert not re.search(r"DEBUG\s*=\s*[\"']?(1|true|yes|on)\b", text, re.IGNORECASE)
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    assert ("WORKDIR", APP_DIR) in instructions
    users = [arguments for keyword, arguments in instructions if keyword == "USER"]
    assert users, "the image runs as root"
    assert users[-1].split(":")[0] not in ("root", "0")
    assert ("EXPOSE", "8000") in instructions

    cmd = [json.loads(arguments) for keyword, arguments in instructions if keyword == "CMD"]
    assert cmd[-1] == ["python", *process_commands()["web"][1:]]


def test_it_keeps_build_only_secrets_out_of_the_image() -> None:
    instructions = dockerfile_instructions()
    for keyword, arguments in instructions:
        if keyword in ("ENV", "ARG"):
            for secret in SECRETS:
                assert secret not in arguments, f"{keyword} {arguments} bakes {secret} in"
    [collectstatic] = [
        arguments
        for keyword, arguments in instructions
        if keyword == "RUN" and "collectstatic" in arguments
    ]
    assert collectstatic.startswith("env ")
    for name in (*SECRETS, "REDIS_URL"):
        assert re.search(rf"\b{name}=\S+", collectstatic), f"collectstatic lacks {name}"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_it_hard_codes_no_secret_in_compose(name: str) -> None:
    environment = services()[name]["environment"]
    assert isinstance(environment, dict)
    for secret in SECRETS:
        assert re.fullmatch(rf"\$\{{{secret}:\?[^}}]+\}}", environment[secret]), (
            f"{name}: {secret} must be ${{{secret}:?message}}, not {environment[secret]!r}"
        )
    password = re.fullmatch(r"postgres://[^:/@]+:([^@]+)@.+", environment["DATABASE_URL"])
    assert password, environment["DATABASE_URL"]
    assert re.fullmatch(r"\$\{POSTGRES_PASSWORD:\?[^}]+\}", password.group(1))
    assert re.fullmatch(
        r"\$\{POSTGRES_PASSWORD:\?[^}]+\}",
        services()["postgres"]["environment"]["POSTGRES_PASSWORD"],
    )


@pytest.mark.parametrize("name", APP_SERVICES)
def test_it_configures_the_app_for_production_behind_a_proxy(name: str) -> None:
    environment = services()[name]["environment"]
    assert "DEBUG" not in environment
    assert environment["REDIS_URL"] == "redis://redis:6379/0"
    assert environment["DATABASE_URL"].startswith("postgres://")
    assert environment["SECURE_PROXY_SSL_HEADER"] == "1"
    assert environment["ALLOWED_HOSTS"].startswith("${ALLOWED_HOSTS:?")


def test_it_starts_the_app_after_migrations_on_a_healthy_database() -> None:
    all_services = services()
    assert all_services["postgres"]["image"] == "postgres:16"
    assert "healthcheck" in all_services["postgres"]
    assert all_services["migrate"]["restart"] == "no"
    assert all_services["migrate"]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    for name in process_commands():
        depends_on = all_services[name]["depends_on"]
        assert depends_on["migrate"] == {"condition": "service_completed_successfully"}
        assert depends_on["postgres"] == {"condition": "service_healthy"}
