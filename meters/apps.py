from __future__ import annotations

from django.apps import AppConfig


class MetersConfig(AppConfig):
    name = "meters"
