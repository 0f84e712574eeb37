"""project.worker_db: which database connections a worker keeps between tasks, on a real
PostgreSQL connection (the reuse itself, through a real worker, is in
test_delivery_worker.py)."""

from __future__ import annotations

import select
import time
from types import SimpleNamespace

import psycopg
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


def test_a_kept_connection_is_checked_without_a_round_trip(monkeypatch):
    connection.ensure_connection()
    kept = connection.connection
    worker_db._after_task(task=WORKER_TASK)
    asked = []
    monkeypatch.setattr(connection, "is_usable", lambda: asked.append("SELECT 1") or True)
    worker_db._before_task(task=WORKER_TASK)
    with connection.cursor() as cursor:
        cursor.execute("SELECT 2")
        assert cursor.fetchone() == (2,)
    assert connection.connection is kept and asked == []


def test_a_connection_that_postgresql_ended_between_tasks_is_replaced_before_the_next():
    connection.ensure_connection()
    ended = connection.connection
    backend = ended.info.backend_pid
    worker_db._after_task(task=WORKER_TASK)
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
    deadline = time.monotonic() + 5
    while not select.select([ended.pgconn.socket], [], [], 0.05)[0] and time.monotonic() < deadline:
        pass  # the server's goodbye is on its way
    worker_db._before_task(task=WORKER_TASK)
    with connection.cursor() as cursor:  # the task's first query: no error, a new backend
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != backend
