"""The Celery app. Configuration lives in celeryconfig.py at the top level."""

from __future__ import annotations

import os

from celery import Celery, signals

from project import broker

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
broker.install()

app = Celery("project", task_cls="celery.contrib.django.task:DjangoTask")
app.config_from_object("celeryconfig")
app.autodiscover_tasks(["whatsapp", "bots"])

# Connected here so that every worker has them before it starts: a worker keeps a clean
# database connection between tasks (Celery's fixup would close it); worker heartbeats in
# Redis for /readyz (Celery only sends heartbeat_sent when a receiver exists by then).
import project.worker_db  # noqa: E402, F401
import whatsapp.ops.heartbeat  # noqa: E402, F401


@signals.before_task_publish.connect
def _carry_log_context(headers=None, **_kwargs):
    """Carry the correlation id (and tenant) from the enqueuing code into the task."""
    from project.logging import current_context

    ctx = current_context()
    if headers is not None and ctx:
        headers.setdefault("log_context", {k: ctx[k] for k in ("tenant", "correlation_id") if k in ctx})


_task_tokens: dict[str, object] = {}


@signals.task_prerun.connect
def _restore_log_context(task_id=None, task=None, **_kwargs):
    from project.logging import _context

    carried = getattr(task.request, "log_context", None) or {}
    _task_tokens[task_id] = _context.set({**carried, "task": task.name.rsplit(".", 1)[-1]})


@signals.task_postrun.connect
def _reset_log_context(task_id=None, **_kwargs):
    from project.logging import _context

    token = _task_tokens.pop(task_id, None)
    if token is not None:
        _context.reset(token)
