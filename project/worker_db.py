"""A Celery worker keeps its PostgreSQL connection from one task to the next.

Celery's Django fixup closes every database connection before and after each task
(celery 5.7, DjangoWorkerFixup.close_database), so every task opened a new one: about
3 ms and a newly forked PostgreSQL backend per task, two per customer message
(docs/PERFORMANCE.md, "Third pass"). Celery reuses connections only when
CELERY_DB_REUSE_MAX is set (celeryconfig.py), and then without looking at them. It once
used Django's close_if_unusable_or_obsolete() instead and went back (celery#9824): a task
interrupted inside a query (a soft time limit's signal) left a connection that Django
still thought usable, and the next task on it failed.

So a connection outlives its task here only when nothing can be half done on it:
- after a task: PostgreSQL's protocol says it is idle (psycopg's transaction status
  IDLE: no command in flight, no transaction open or failed), Django holds no atomic
  block on it and saw no error on it. Anything else closes it, as Celery would.
- before a task: Django's own start-of-request rule (close_if_unusable_or_obsolete):
  closed once CONN_MAX_AGE has passed. A connection that PostgreSQL closed meanwhile (a
  restart, pg_terminate_backend, an idle timeout) must be replaced, not fail the task.
  Django's CONN_HEALTH_CHECKS would ask with a `SELECT 1` before the task's first query:
  a round trip and a PostgreSQL transaction per task, two per customer message. An idle
  connection's socket tells the same without one: PostgreSQL sends nothing unasked to an
  idle session except when it ends it (the FATAL error, then the end of the stream), so
  a socket with something to read is closed here, and a silent one is taken as checked.
SQLite (the embedded default) keeps Celery's behaviour: closed after every task.
"""

from __future__ import annotations

import select

from celery import signals
from django.db import connections


def _reusable(conn) -> bool:
    if conn.vendor != "postgresql" or conn.in_atomic_block or conn.errors_occurred:
        return False
    from psycopg.pq import TransactionStatus

    return conn.connection.info.transaction_status == TransactionStatus.IDLE


@signals.task_prerun.connect
def _before_task(task=None, **_kwargs):
    if getattr(task.request, "is_eager", False):
        return  # runs inside the caller (tests): its connection is the caller's
    for conn in connections.all(initialized_only=True):
        conn.close_if_unusable_or_obsolete()
        if conn.vendor == "postgresql" and conn.connection is not None:
            if _ended_by_server(conn):
                conn.close()  # the task's first query opens a new one
            else:
                conn.health_check_done = True  # Django's SELECT 1 would learn nothing more


def _ended_by_server(conn) -> bool:
    """Whether PostgreSQL has written to this idle connection (or it is already closed):
    a zero-timeout poll of its socket, no round trip."""
    try:
        readable, _, _ = select.select([conn.connection.pgconn.socket], [], [], 0)
    except Exception:  # noqa: BLE001 - psycopg raises on a connection it knows is closed
        return True
    return bool(readable)


@signals.task_postrun.connect
def _after_task(task=None, **_kwargs):
    if getattr(task.request, "is_eager", False):
        return
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None and not _reusable(conn):
            conn.close()
