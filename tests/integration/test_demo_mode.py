"""Demo mode (`make run` without Twilio credentials): the demo tenant shows every
capability, and `manage.py demo_fault` makes the fake providers fail, so a newcomer can
watch retries and dead letters without a curl to an undocumented endpoint. Real worker,
real Redis, the fake Twilio API over HTTP."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.support.redis_server import queued_tasks
from tests.support.twilio_webhooks import post_twilio, twilio_form
from tests.support.waiting import wait_for
from whatsapp.models import DeadLetter, Message, SessionState, Status, Tenant

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PHONE = "+15551234567"


def demo_fault(*args: str) -> str:
    out = StringIO()
    call_command("demo_fault", *args, stdout=out)
    return out.getvalue()


def test_an_invalid_number_switched_on_by_demo_fault_turns_the_reply_into_a_dead_letter(
    client, tenant, twilio, start_worker
):
    start_worker()
    out = demo_fault("twilio", "--invalid-number", PHONE, "--fake-twilio", twilio.base_url)
    assert "21211" in out

    assert post_twilio(client, "/webhooks/twilio/acme/", twilio_form(Body="hello")).status_code == 200

    letter = wait_for(lambda: DeadLetter.objects.filter(resolved_at__isnull=True).first(), 20,
                      message="the dead letter")
    assert letter.reason == DeadLetter.Reason.PERMANENT and "21211" in letter.last_error
    assert twilio.sent_to(PHONE) == []


def test_transient_failures_from_demo_fault_are_retried_and_reset_switches_them_off(
    client, tenant, twilio, start_worker
):
    demo_fault("twilio", "--fail-next", "2", "--fake-twilio", twilio.base_url)
    assert len(twilio.faults.errors) == 2
    start_worker()

    assert post_twilio(client, "/webhooks/twilio/acme/", twilio_form(Body="hello")).status_code == 200

    reply = wait_for(lambda: Message.objects.filter(direction="out", status=Status.SENT).first(), 30,
                     message="the reply sent after two retries")
    assert reply.attempts.filter(outcome="transient").count() == 2
    assert len(twilio.sent_to(PHONE)) == 1

    demo_fault("twilio", "--invalid-number", PHONE, "--fake-twilio", twilio.base_url)
    out = demo_fault("reset", "--fake-twilio", twilio.base_url)
    assert "fake Twilio: no faults" in out
    assert twilio.faults.invalid_numbers == set() and twilio.faults.errors == []


def test_demo_fault_makes_the_sandbox_session_fail_sends(tenant, sandbox, lifecycle_worker, settings):
    settings.SIDECAR_TRANSPORT = "sandbox"
    lifecycle_worker()

    out = demo_fault("whatsapp-web", "--tenant", "acme", "--fail-next", "3")

    assert "the next 3 sends fail" in out
    assert sandbox.state("acme")["behavior"]["failSends"] == 3


def test_demo_fault_refuses_without_a_fake_twilio_and_with_a_real_whatsapp_session(tenant, settings):
    with pytest.raises(CommandError, match="works only in `make run`'s demo mode"):
        demo_fault("twilio", "--fail-next", "1", "--fake-twilio", "http://127.0.0.1:9")
    settings.SIDECAR_TRANSPORT = "baileys"
    with pytest.raises(CommandError, match="is real"):
        demo_fault("whatsapp-web", "--tenant", "acme", "--fail-next", "1")


def test_the_demo_tenant_has_its_whatsapp_web_session_on_and_started_once(redis_server, settings, tmp_path):
    settings.SIDECAR_TRANSPORT = "sandbox"
    out = StringIO()
    call_command("bootstrap_demo", "--run-dir", str(tmp_path), stdout=out)
    call_command("bootstrap_demo", "--run-dir", str(tmp_path), stdout=StringIO())

    demo = Tenant.objects.get(slug="demo")
    assert demo.baileys_enabled
    assert SessionState.objects.get(tenant=demo).desired == "running"
    assert queued_tasks(redis_server) == [("whatsapp.lifecycle.start", ["demo"])]  # once, not per run
    assert "/admin/whatsapp/sessionstate/tenant/demo/" in out.getvalue()
