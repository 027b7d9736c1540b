from __future__ import annotations

from django.apps import AppConfig


class GridPlatformConfig(AppConfig):
    name = "gridplatform"
    verbose_name = "Grid platform"
