"""The test database as a URL, for the processes a test starts (workers, gunicorn)."""

from __future__ import annotations


def database_url() -> str:
    """The URL of the test database that pytest-django created, for worker processes."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    host, port, user = db.get("HOST") or "127.0.0.1", db.get("PORT") or 5432, db.get("USER") or "postgres"
    return f"postgres://{user}@{host}:{port}/{db['NAME']}"
