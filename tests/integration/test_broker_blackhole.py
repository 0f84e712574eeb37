"""A Redis that does not answer (a dead host behind a firewall that drops packets, a
half-open connection after a failover) must not hold a webhook: the broker's connect and
socket timeouts bound the on-commit publish, the webhook answers 200 in a few seconds
with the message stored, and the reconciler publishes it once Redis is back."""

from __future__ import annotations

import socket
import time

import pytest

from tests.support.twilio_webhooks import post_twilio, twilio_form
from whatsapp.models import Direction, Message, Status
from whatsapp.tasks import reconcile_outbound

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]

# Gunicorn kills a worker after 30 s; Twilio gives up on a webhook after 15 s.
ANSWER_WITHIN_SECONDS = 8


def answering_nothing() -> list[socket.socket]:
    """A port whose connections are accepted by the kernel but never answered."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(100)
    return [listener]


def dropping_connects() -> list[socket.socket]:
    """A port whose new connections never complete: its accept queue is full, so Linux
    drops their SYNs, as a firewall that drops packets does."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    held = [listener]
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(listener.getsockname())
        held.append(filler)
    time.sleep(0.2)
    return held


def use_broker(url: str) -> None:
    """Point this process's Celery producer at `url` (the web process's publish path)."""
    from project.celery import app

    app.conf.broker_url = url
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def blackholed_broker(request, redis_server):
    sockets = request.param()
    port = sockets[0].getsockname()[1]
    use_broker(f"redis://127.0.0.1:{port}/0")
    yield
    use_broker(redis_server.url)
    for sock in sockets:
        sock.close()


@pytest.mark.parametrize("blackholed_broker", [answering_nothing, dropping_connects], indirect=True)
def test_a_webhook_answers_in_seconds_while_redis_is_blackholed_and_the_reconciler_publishes_later(
    client, tenant, settings, blackholed_broker, redis_server
):
    started = time.monotonic()
    response = post_twilio(client, "/webhooks/twilio/acme/", twilio_form(Body="Are you open today?"))
    elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert elapsed < ANSWER_WITHIN_SECONDS, f"the webhook took {elapsed:.1f} s"
    stored = Message.objects.get(direction=Direction.INBOUND)
    assert (stored.body, stored.status) == ("Are you open today?", Status.RECEIVED)

    use_broker(redis_server.url)  # Redis is reachable again
    settings.RECONCILE_GRACE_SECONDS = 0
    assert reconcile_outbound()["inbound"] == 1
    assert redis_server.client().llen("ai") == 1, "the answer task was published"
