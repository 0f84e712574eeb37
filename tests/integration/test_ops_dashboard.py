"""The staff dashboard and `manage.py pipeline_status`: the same numbers, from the
database (and breakers from Redis), for a person in a browser or a terminal."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.utils import timezone

from whatsapp.models import Contact, DeadLetter, DeliveryAttempt, Direction, Message, SessionState, Status

pytestmark = pytest.mark.django_db


@pytest.fixture
def traffic(tenant, redis_server):
    """In the last hour: four customers answered in 2, 4, 6 and 40 s (one after a failover
    from Baileys to Twilio), one dead letter; a logged-out session and an open breaker."""
    from whatsapp.outbound.breakers import get_breaker

    now = timezone.now()
    for i, (delay, providers) in enumerate([(2, ["twilio"]), (4, ["twilio"]), (6, ["baileys", "twilio"]),
                                            (40, ["twilio"])]):
        contact = Contact.objects.create(tenant=tenant, phone=f"+1555000000{i}")
        received = now - timedelta(minutes=30)
        inbound = Message.objects.create(tenant=tenant, contact=contact, direction=Direction.INBOUND,
                                         status=Status.ANSWERED, body="hi", created_at=received)
        reply = Message.objects.create(tenant=tenant, contact=contact, direction=Direction.OUTBOUND, in_reply_to=inbound,
                                       status=Status.SENT, provider="twilio", body="hello", created_at=received,
                                       sent_at=received + timedelta(seconds=delay))
        for provider in providers:
            DeliveryAttempt.objects.create(message=reply, provider=provider,
                                           outcome="accepted" if provider == "twilio" else "transient")
    contact = Contact.objects.create(tenant=tenant, phone="+15550000009")
    dead = Message.objects.create(tenant=tenant, contact=contact, direction=Direction.OUTBOUND, status=Status.DEAD,
                                  provider="", body="sorry")
    DeliveryAttempt.objects.create(message=dead, provider="twilio", outcome="permanent")
    DeadLetter.objects.create(message=dead, reason="permanent", last_error="21211")
    SessionState.objects.create(tenant=tenant, status="logged_out", desired="running", can_send=False,
                                last_disconnect_code=401, alert="scan a new QR code")
    get_breaker("acme", "baileys").open()
    return now


def test_the_dashboard_shows_staff_whether_customers_are_answered(client, traffic):
    staff = User.objects.create_user("ops", password="pw-for-tests-only", is_staff=True)
    client.force_login(staff)

    response = client.get("/admin/ops/")

    assert response.status_code == 200
    page = response.content.decode()
    hour = response.context["windows"][0]
    assert hour["w"].name == "hour" and hour["w"].inbound == 4 and hour["w"].replies_sent == 4
    assert hour["median"] == "4.0 s"  # nearest rank of 2, 4, 6, 40
    assert hour["p95"] == "40.0 s"
    assert hour["failover_rate"] == "20.0 %"  # 1 of 5 replies tried a second provider
    assert 'id="ops-dead-letters"' in page and ">1</a>" in page
    assert "acme:baileys (open)" in page
    assert "logged_out" in page and "scan a new QR code" in page
    assert "<svg" in page and "4 sent, 1 dead letters" in page


def test_the_admin_index_links_to_the_dashboard(client, db):
    client.force_login(User.objects.create_superuser("root", password="pw-for-tests-only"))
    page = client.get("/admin/").content.decode()
    assert 'href="/admin/ops/"' in page
    assert "Site administration" in page  # the admin's own index is still there


def test_the_dashboard_is_refused_to_anonymous_and_non_staff_users(client, db):
    response = client.get("/admin/ops/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")

    client.force_login(User.objects.create_user("customer", password="pw-for-tests-only", is_staff=False))
    response = client.get("/admin/ops/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_pipeline_status_prints_the_same_numbers_in_a_terminal(traffic):
    out = StringIO()
    call_command("pipeline_status", stdout=out)
    text = out.getvalue()

    assert "Last hour: 4 customer messages, 4 replies sent, 1 dead" in text
    assert "time to reply: median 4.0 s, p95 40.0 s" in text
    assert "failover rate: 20.0 % (1 of 5)" in text
    assert "Open dead letters: 1 (permanent 1)" in text
    assert "Breakers not closed: 1 (acme:baileys open)" in text
    assert "acme: logged_out (cannot send, last disconnect 401) ALERT: scan a new QR code" in text


def test_the_dashboard_agrees_with_itself_on_dead_letters_bursts_and_discarded_replies(client, tenant, redis_server):
    """A burst of two questions answered by one reply; dead letters open, requeued (then
    sent) and discarded, some hours ago: the chart, the cards and the tables tell one story."""
    now = timezone.now()
    dana = Contact.objects.create(tenant=tenant, phone="+15550000001")

    def msg(direction, status, ago, **fields):
        return Message.objects.create(tenant=tenant, contact=dana, direction=direction, status=status, body="x",
                                      created_at=now - ago, **fields)

    first = msg(Direction.INBOUND, Status.ANSWERED, timedelta(minutes=10))
    second = msg(Direction.INBOUND, Status.ANSWERED, timedelta(minutes=10) - timedelta(seconds=2))
    msg(Direction.OUTBOUND, Status.SENT, timedelta(minutes=9), in_reply_to=second, provider="twilio",
        sent_at=now - timedelta(minutes=9))
    assert not first.replies.exists()  # merged into the burst: answered by second's reply
    # Dead-lettered 23.5 hours ago, requeued and sent then.
    old = msg(Direction.OUTBOUND, Status.SENT, timedelta(hours=23, minutes=30), provider="twilio",
              sent_at=now - timedelta(hours=23, minutes=20))
    DeadLetter.objects.create(message=old, reason="exhausted", created_at=now - timedelta(hours=23, minutes=30),
                              resolved_at=now - timedelta(hours=23, minutes=21), resolution="requeued")
    # Discarded by staff three hours ago after Twilio refused it.
    discarded = msg(Direction.OUTBOUND, Status.DISCARDED, timedelta(hours=3))
    DeliveryAttempt.objects.create(message=discarded, provider="twilio", outcome="permanent")
    DeadLetter.objects.create(message=discarded, reason="permanent", created_at=now - timedelta(hours=3),
                              resolved_at=now - timedelta(hours=2), resolution="discarded")
    # Still open, from half an hour ago.
    dead = msg(Direction.OUTBOUND, Status.DEAD, timedelta(minutes=30))
    DeliveryAttempt.objects.create(message=dead, provider="twilio", outcome="permanent")
    DeadLetter.objects.create(message=dead, reason="permanent", created_at=now - timedelta(minutes=30))
    client.force_login(User.objects.create_user("ops", password="pw-for-tests-only", is_staff=True))

    response = client.get("/admin/ops/")
    page = response.content.decode()
    hour, day = (item["w"] for item in response.context["windows"])

    chart = response.context["s"]["hourly"]
    assert sum(b["sent"] for b in chart) == day.replies_sent == 2
    assert sum(b["dead"] for b in chart) == day.replies_dead == 3
    assert f"{day.replies_sent} sent, {day.replies_dead} dead letters" in page
    assert "3 made in the last day, 2 of them resolved" in page
    assert ">1</a>" in page  # one open dead letter

    assert (hour.inbound, hour.answered, hour.merged) == (2, 2, 1)
    assert "2 of 2 customer messages answered (1 together with a later message of the same burst" in page

    assert "none" not in day.by_provider and "" not in day.by_provider
    assert day.by_provider["twilio"] == {"sent": 2, "discarded": 1, "dead": 1}
    assert "<th>Discarded</th>" in page and "<th>Dead letter</th>" in page


def test_the_admins_view_site_link_opens_the_dashboard_not_a_404(client, db):
    client.force_login(User.objects.create_superuser("root", password="pw-for-tests-only"))
    page = client.get("/admin/").content.decode()

    assert '<a href="/admin/ops/">View site</a>' in page
    assert client.get("/admin/ops/").status_code == 200
