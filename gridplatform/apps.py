from __future__ import annotations

from django.apps import AppConfig


class GridPlatformConfig(AppConfig):
    name = "gridplatform"
    verbose_name = "Grid platform"

    def ready(self) -> None:
        # Load the Celery app so that every Django process (web, management commands, tests)
        # sends tasks through it: ``shared_task`` binds to the current app, and without this
        # import a web process would fall back to Celery's unconfigured default app.
        from gridplatform import celery  # noqa: F401
