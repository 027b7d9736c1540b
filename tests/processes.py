"""Starting the product's own processes from tests: they must see the test database."""

from __future__ import annotations

import os

from django.db import connection


def database_url() -> str:
    """A DATABASE_URL naming the database the tests are using right now (the test database)."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a child process: the test database, the same Redis, DEBUG on."""
    env = dict(os.environ)
    env.update(DATABASE_URL=database_url(), DEBUG="1", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env
