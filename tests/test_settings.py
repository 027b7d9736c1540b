"""The settings module, loaded fresh in a child process with a given environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ledger.identity import generate_key_encryption_key

ROOT = Path(__file__).resolve().parent.parent

PRODUCTION = {
    "SECRET_KEY": "p" * 20 + "-production-secret-from-the-environment-4f9c2a",
    "ALLOWED_HOSTS": "grid.example.org",
    "DATABASE_URL": "postgres://grid@db.example.org:5432/grid",
    "REDIS_URL": "redis://redis.example.org:6379/0",
}


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    return subprocess.run(
        [sys.executable, *argv],
        cwd=ROOT,
        env=base | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def show(expression: str, env: dict[str, str]) -> str:
    code = f"import django; django.setup(); from django.conf import settings; print({expression})"
    result = run(["-c", code], env | {"DJANGO_SETTINGS_MODULE": "gridplatform.settings"})
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_it_passes_the_deploy_check_with_zero_warnings_in_production() -> None:
    env = PRODUCTION | {"KEY_ENCRYPTION_KEY": generate_key_encryption_key()}
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_it_fails_the_deploy_check_when_debug_is_on() -> None:
    env = PRODUCTION | {"KEY_ENCRYPTION_KEY": generate_key_encryption_key(), "DEBUG": "1"}
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)
    assert result.returncode != 0
    assert "security.W018" in result.stderr + result.stdout


def test_it_keeps_debug_off_unless_asked() -> None:
    env = PRODUCTION | {"KEY_ENCRYPTION_KEY": generate_key_encryption_key()}
    assert show("settings.DEBUG, settings.SECURE_SSL_REDIRECT", env) == "False True"


def test_it_refuses_to_start_without_a_secret_key_when_debug_is_off() -> None:
    env = {k: v for k, v in PRODUCTION.items() if k != "SECRET_KEY"}
    env["KEY_ENCRYPTION_KEY"] = generate_key_encryption_key()
    result = run(["manage.py", "check"], env)
    assert result.returncode != 0
    assert "SECRET_KEY must be set in the environment when DEBUG is off" in result.stderr


def test_it_refuses_to_start_without_a_key_encryption_key_when_debug_is_off() -> None:
    result = run(["manage.py", "check"], PRODUCTION)
    assert result.returncode != 0
    assert "KEY_ENCRYPTION_KEY must be set in the environment when DEBUG is off" in result.stderr


def test_it_hashes_passwords_with_argon2() -> None:
    env = PRODUCTION | {"KEY_ENCRYPTION_KEY": generate_key_encryption_key()}
    code = "__import__('django.contrib.auth.hashers', fromlist=['x']).make_password('x')[:7]"
    assert show(code, env) == "argon2$"


def test_it_defaults_to_sqlite_under_var_and_an_embedded_redis() -> None:
    printed = show(
        "settings.DATABASES['default']['ENGINE'], settings.DATABASES['default']['NAME'], "
        "settings.REDIS_URL.split('://')[0], "
        "__import__('redis').Redis.from_url(settings.REDIS_URL).ping()",
        {"DEBUG": "1"},
    )
    engine, name, scheme, pong = printed.split()
    assert engine == "django.db.backends.sqlite3"
    assert Path(name) == ROOT / "var" / "site.sqlite3"
    assert scheme == "unix"
    assert pong == "True"


def test_the_embedded_redis_is_out_of_reach_of_a_terminals_ctrl_c() -> None:
    """Ctrl-C signals the terminal's whole process group. The embedded Redis is in a group of its
    own, so the worker and the web server still reach it while the run command stops them."""
    printed = show(
        "__import__('os').getpgid(__import__('redis').Redis.from_url(settings.REDIS_URL)"
        ".info()['process_id']), __import__('os').getpgrp()",
        {"DEBUG": "1"},
    )
    redis_group, own_group = printed.split()
    assert redis_group != own_group


def test_it_uses_the_servers_it_is_given() -> None:
    printed = show(
        "settings.DATABASES['default']['ENGINE'], settings.REDIS_URL, settings.CELERY_BROKER_URL",
        {"DEBUG": "1", **PRODUCTION},
    )
    assert printed.split() == [
        "django.db.backends.postgresql",
        PRODUCTION["REDIS_URL"],
        PRODUCTION["REDIS_URL"],
    ]
