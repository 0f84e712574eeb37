"""Task names are the wire format of tasks already queued in Redis, and routes match
names: moving a module must neither rename a task nor send it to another queue."""

from __future__ import annotations

import pytest

from project.celery import app

# Frozen: a deployed system has tasks with these names waiting in Redis. Never edit a
# line; add one for a new task (and its route in celeryconfig.py).
FROZEN_TASKS = {
    "bots.tasks.generate_reply": "ai",
    "bots.tasks.answer_trial": "ai",
    "whatsapp.tasks.send_message": "send",
    "whatsapp.tasks.reconcile_outbound": "default",
    "whatsapp.tasks.purge_expired": "default",
    "whatsapp.tasks.collect_rejected_inbound": "baileys",
    "whatsapp.lifecycle.start": "baileys",
    "whatsapp.lifecycle.stop": "baileys",
    "whatsapp.lifecycle.logout": "baileys",
    "whatsapp.lifecycle.restart": "baileys",
    "whatsapp.lifecycle.simulate_scan": "baileys",
    "whatsapp.lifecycle.health_check": "baileys",
    "whatsapp.lifecycle.check_session": "baileys",
    "whatsapp.media.process_media": "ai",
    "whatsapp.inbox.resume_idle": "default",
    "whatsapp.lifecycle.move": "baileys",
}


def our_tasks() -> dict:
    """Every task a worker registers from our apps (found the way a worker finds them)."""
    app.loader.import_default_modules()
    return {
        name: task for name, task in app.tasks.items()
        if task.__module__.startswith(("whatsapp.", "bots.")) or name.startswith(("whatsapp.", "bots."))
    }


def test_a_worker_registers_exactly_the_frozen_task_names():
    assert sorted(our_tasks()) == sorted(FROZEN_TASKS)


@pytest.mark.parametrize(("name", "queue"), sorted(FROZEN_TASKS.items()))
def test_each_task_is_routed_by_its_name_to_its_queue(name, queue):
    route = app.amqp.router.route({}, name)
    assert route["queue"].name == queue


def test_every_task_has_an_explicit_route_and_no_route_is_a_stale_module_path():
    from celeryconfig import task_routes

    assert sorted(task_routes) == sorted(FROZEN_TASKS)
    assert not [pattern for pattern in task_routes if "*" in pattern]
