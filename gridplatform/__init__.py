"""The site package: settings, URLs, ASGI and Celery apps, accounts and roles, dashboards.

It is not called ``platform`` because that name shadows Python's standard-library ``platform``
module, which Django's own imports need.
"""

from __future__ import annotations

from gridplatform.celery import app as celery_app

__all__ = ["celery_app"]
