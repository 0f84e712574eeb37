"""project.worker_db: which database connections a worker keeps between tasks, on a real
PostgreSQL connection (the reuse itself, through a real worker, is in
test_delivery_worker.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.db import connection, transaction

from project import worker_db

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

WORKER_TASK = SimpleNamespace(request=SimpleNamespace(is_eager=False))


def test_an_idle_connection_outlives_its_task():
    connection.ensure_connection()
    kept = connection.connection
    worker_db._after_task(task=WORKER_TASK)
    worker_db._before_task(task=WORKER_TASK)
    assert connection.connection is kept


def test_a_connection_left_inside_a_query_is_closed_after_its_task():
    # What a soft time limit's signal leaves behind: the query sent, its answer never read
    # (the case that made Celery stop reusing connections, celery#9824).
    connection.ensure_connection()
    connection.connection.pgconn.send_query(b"SELECT pg_sleep(0.2)")
    worker_db._after_task(task=WORKER_TASK)
    assert connection.connection is None


def test_a_connection_left_inside_a_transaction_is_closed_after_its_task():
    with transaction.atomic():
        connection.cursor().execute("SELECT 1")
        worker_db._after_task(task=WORKER_TASK)
        assert connection.connection.closed
    assert connection.connection is None
