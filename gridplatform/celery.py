"""The Celery app: workers, beat and (later) the validators run tasks from it."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gridplatform.settings")

app = Celery("gridplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
