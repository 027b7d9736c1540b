"""The site package: settings, URLs, ASGI and Celery apps, accounts and roles, dashboards.

It is not called ``platform`` because that name shadows Python's standard-library ``platform``
module, which Django's own imports need.

Importing it loads nothing: the Celery app (``gridplatform.celery``) is loaded by Django's app
registry (``GridPlatformConfig.ready``) in every Django process, and named by the workers
(``celery -A gridplatform.celery``), so that the ledger's deterministic core, which lives beside
the site, never drags Django or Celery in.
"""
