"""Logs an operator can follow: one structured line per step, each carrying the tenant,
the message id and a correlation id that follows the customer's message from the webhook
(web process) through the AI and send workers; phone numbers masked and no secret ever
written. Real Django, a real Celery worker writing JSON lines, the fake Twilio API."""

from __future__ import annotations

import io
import json
import logging

import pytest

from project.logging import ContextFilter, JsonFormatter
from tests.support.twilio_webhooks import post_twilio, twilio_form
from tests.support.waiting import wait_for
from whatsapp.models import DeadLetter, Direction, Message, Status

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PATH = "/webhooks/twilio/acme/"
CUSTOMER = "+15551234567"
UNREACHABLE = "+15559876543"  # Twilio answers 21211 (invalid number) for this one


@pytest.fixture
def web_log():
    """Every log line this (web) process writes, formatted as in production."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    yield stream
    root.removeHandler(handler)


def json_lines(text: str) -> list[dict]:
    lines = []
    for raw in text.splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue  # the worker's start-up banner
        if isinstance(line, dict):
            lines.append(line)
    return lines


def test_a_messages_correlation_id_appears_in_the_web_ai_and_send_log_lines(client, tenant, twilio, start_worker,
                                                                             web_log):
    worker = start_worker(LOG_FORMAT="json")

    assert post_twilio(client, PATH, twilio_form(Body="hello")).status_code == 200
    wait_for(lambda: Message.objects.filter(direction=Direction.OUTBOUND, status=Status.SENT).exists(), 20,
             message="the reply sent")
    inbound = Message.objects.get(direction=Direction.INBOUND)
    cid = str(inbound.correlation_id)

    web = [line for line in json_lines(web_log.getvalue()) if line.get("correlation_id") == cid]
    assert any(line["msg"] == "webhook accepted" for line in web)
    accepted = next(line for line in web if line["msg"] == "webhook accepted")
    assert accepted["tenant"] == "acme" and accepted["message_id"] == inbound.pk

    wait_for(lambda: "message sent" in worker.output(), 5, message="the send log line")
    steps = {line["msg"]: line for line in json_lines(worker.output()) if line.get("correlation_id") == cid}
    assert "reply generated" in steps, "the ai step logs with the correlation id"
    assert steps["reply generated"]["task"] == "generate_reply"
    assert "attempt started" in steps and "attempt finished: accepted" in steps
    assert steps["message sent"]["task"] == "send_message"
    reply = Message.objects.get(direction=Direction.OUTBOUND)
    assert steps["message sent"]["message_id"] == reply.pk
    assert steps["message sent"]["tenant"] == "acme"


def test_no_log_line_holds_a_full_phone_number_or_a_secret(client, tenant, twilio, start_worker, web_log, settings):
    settings.METRICS_TOKEN = "metrics-token-5f1c0b7e"
    secrets = {
        "TWILIO_AUTH_TOKEN": settings.TWILIO_AUTH_TOKEN,
        "SIDECAR_TOKEN": settings.SIDECAR_TOKEN,
        "SIDECAR_WEBHOOK_SECRET": settings.SIDECAR_WEBHOOK_SECRET,
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "METRICS_TOKEN": settings.METRICS_TOKEN,
        "LLM_API_KEY": "sk-test-llm-key-3a9d",
    }
    twilio.faults.invalid_numbers.add(UNREACHABLE)
    worker = start_worker(LOG_FORMAT="json", LLM_API_KEY=secrets["LLM_API_KEY"], METRICS_TOKEN=settings.METRICS_TOKEN,
                          LOG_LEVEL="DEBUG")

    assert post_twilio(client, PATH, twilio_form(Body="hello", From=f"whatsapp:{CUSTOMER}")).status_code == 200
    assert post_twilio(client, PATH, twilio_form(Body="hi", From=f"whatsapp:{UNREACHABLE}")).status_code == 200
    wait_for(lambda: Message.objects.filter(direction=Direction.OUTBOUND, status=Status.SENT).exists(), 20,
             message="one reply sent")
    wait_for(lambda: DeadLetter.objects.exists(), 20, message="the other dead-lettered")
    wait_for(lambda: "dead letter" in worker.output(), 5, message="the dead-letter log line")
    client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {settings.METRICS_TOKEN}")

    logs = {"web": web_log.getvalue(), "worker": worker.output()}
    # The run did log about both customers, by their masked numbers, and both outcomes.
    assert '"contact": "***4567"' in logs["web"] and '"contact": "***6543"' in logs["web"]
    assert "message sent" in logs["worker"] and "dead letter: permanent" in logs["worker"]
    for where, text in logs.items():
        assert text.strip(), f"no {where} log captured"
        for number in (CUSTOMER, UNREACHABLE):
            assert number.lstrip("+") not in text, f"{where} log holds the full number {number}"
        for name, secret in secrets.items():
            assert secret not in text, f"{where} log holds {name}"
