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
  closed once CONN_MAX_AGE has passed, and with CONN_HEALTH_CHECKS the task's first query
  is preceded by `SELECT 1`, so a connection that PostgreSQL closed meanwhile (a restart)
  is replaced instead of failing the task.
SQLite (the embedded default) keeps Celery's behaviour: closed after every task.
"""

from __future__ import annotations

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


@signals.task_postrun.connect
def _after_task(task=None, **_kwargs):
    if getattr(task.request, "is_eager", False):
        return
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None and not _reusable(conn):
            conn.close()
