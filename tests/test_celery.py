"""The Celery app with a real worker process on the real broker."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.utils import timezone

from gridplatform.accounts.tasks import sessions_clear_expired
from gridplatform.celery import app
from tests.processes import child_env

ROOT = Path(__file__).resolve().parent.parent


def test_it_serializes_json_only_with_time_limits() -> None:
    assert app.conf.task_serializer == "json"
    assert app.conf.accept_content == ["json"]
    assert app.conf.task_time_limit == 120
    assert app.conf.task_acks_late is True


def test_it_schedules_only_tasks_that_exist() -> None:
    app.loader.import_default_modules()
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert scheduled == {
        "flexibility.requirements_clear",
        "gridplatform.accounts.tasks.registrations_forget",
        "gridplatform.accounts.tasks.sessions_clear_expired",
        "ledger.pending_heal",
        "ledger.projection_catch_up",
        "ledger.read_models_audit",
        "market.slots_clear",
        "market.slots_settle",
        "meters.relay_pending",
    }
    assert scheduled <= set(app.tasks)


@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
def test_it_runs_a_task_in_a_real_worker_process(tmp_path: Path) -> None:
    Session.objects.create(
        session_key="expired0000000000000000000000001",
        session_data="",
        expire_date=timezone.now() - timedelta(days=1),
    )
    Session.objects.create(
        session_key="current0000000000000000000000001",
        session_data="",
        expire_date=timezone.now() + timedelta(days=1),
    )
    queue = f"test-{time.monotonic_ns()}"
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "gridplatform.celery",
            "worker",
            "--pool=solo",
            "--loglevel=WARNING",
            "-Q",
            queue,
            f"--hostname={queue}@%h",
        ],
        cwd=ROOT,
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        sessions_clear_expired.apply_async(queue=queue)
        deadline = time.monotonic() + 60
        while Session.objects.filter(session_key__startswith="expired").exists():
            assert worker.poll() is None, worker.stderr.read().decode() if worker.stderr else ""
            assert time.monotonic() < deadline, "the worker did not run the task within 60 s"
            time.sleep(0.2)
    finally:
        worker.terminate()
        worker.wait(timeout=20)
    assert list(Session.objects.values_list("session_key", flat=True)) == [
        "current0000000000000000000000001"
    ]
