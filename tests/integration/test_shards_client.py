"""Django's side of the shard contract (docs/SCALING.md), against a local HTTP server that
answers like a sidecar: the client is found from the shard's lease row and carries its
fencing token; a sidecar that refuses the token (409 fenced), or a shard with no owner,
means "not sent, try later"; the lease row itself is taken, renewed and fenced by the
database's clock."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db.models.functions import Now
from django.utils import timezone

from whatsapp.models import Contact, Message, Shard
from whatsapp.outbound.providers.baileys import BaileysProvider
from whatsapp.outbound.providers.base import UNAVAILABLE, OutgoingPart, ProviderError
from whatsapp.sessions.shard_lease import ShardLease
from whatsapp.sessions.sidecar_client import FENCING_HEADER, SidecarUnavailable, sidecar_for

pytestmark = pytest.mark.django_db


class FakeSidecar:
    """Records each request; answers 409 fenced unless the token is `token`."""

    def __init__(self, token: int):
        self.token = token
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                outer.requests.append({"method": self.command, "path": self.path,
                                       "fence": self.headers.get(FENCING_HEADER), "body": body})
                if self.headers.get(FENCING_HEADER) != str(outer.token):
                    status, answer = 409, {"error": "fenced"}
                elif self.path.endswith("/status"):
                    status, answer = 200, {"canSend": True, "connected": True}
                else:
                    status, answer = 200, {"messageId": "3EB0SENT", "outcome": "sent"}
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_sidecar():
    server = FakeSidecar(token=7)
    yield server
    server.close()


@pytest.fixture
def sharded_tenant(tenant, redis_server):  # Redis: the send's pacing slot
    Shard.objects.create(name="s1")
    tenant.shard_id = "s1"
    tenant.baileys_enabled = True
    tenant.save()
    return tenant


def owned(shard: str, url: str, token: int, live: bool = True) -> None:
    Shard.objects.filter(name=shard).update(
        owner="host-a:1:abc", fencing_token=token, sidecar_url=url,
        lease_expires_at=timezone.now() + timedelta(seconds=30 if live else -1))


def part_for(tenant, text: str = "hello") -> OutgoingPart:
    contact = Contact.objects.create(tenant=tenant, phone="+15551230000")
    message = Message.objects.new_outbound(tenant=tenant, contact=contact, body=text)
    return OutgoingPart(message=message, to=contact.phone, text=text, key=f"msg-{message.pk}-0")


def test_a_shard_never_owned_is_reached_at_sidecar_url_without_a_fence(tenant, settings):
    client = sidecar_for(tenant)
    assert client.base == settings.SIDECAR_URL
    assert FENCING_HEADER not in client.headers


def test_a_send_goes_to_the_owner_the_row_names_with_its_fencing_token(sharded_tenant, fake_sidecar):
    owned("s1", fake_sidecar.url, 7)
    provider = BaileysProvider()
    part = part_for(sharded_tenant)

    assert provider.send(part) == "3EB0SENT"

    [sent] = [r for r in fake_sidecar.requests if r["method"] == "POST"]
    assert sent["path"] == f"/sessions/{sharded_tenant.slug}/messages"
    assert sent["fence"] == "7"
    assert sent["body"]["idempotencyKey"] == part.key


def test_a_fenced_answer_is_not_sent_and_retried_later(sharded_tenant, fake_sidecar):
    owned("s1", fake_sidecar.url, 6)  # the row the caller read is one ownership behind
    provider = BaileysProvider()
    part = part_for(sharded_tenant)

    with pytest.raises(ProviderError) as refused:
        provider.send(part)
    assert (refused.value.kind, refused.value.code) == (UNAVAILABLE, "fenced")
    with pytest.raises(ProviderError) as status:
        provider.can_send(part.message)
    assert (status.value.kind, status.value.code) == (UNAVAILABLE, "fenced")

    owned("s1", fake_sidecar.url, 7)  # the next send reads the row again
    assert provider.send(part) == "3EB0SENT"


def test_a_shard_whose_lease_expired_has_no_sidecar_and_nothing_is_sent(sharded_tenant, fake_sidecar):
    owned("s1", fake_sidecar.url, 7, live=False)
    with pytest.raises(SidecarUnavailable):
        sidecar_for(sharded_tenant)
    with pytest.raises(ProviderError) as refused:
        BaileysProvider().send(part_for(sharded_tenant))
    assert refused.value.kind == UNAVAILABLE
    assert fake_sidecar.requests == []


def test_the_lease_row_goes_to_one_owner_at_a_time_and_each_new_owner_gets_the_next_token(db):
    first = ShardLease("s9", "host-a:1:aaa", 30, "http://10.0.0.5:3101")
    second = ShardLease("s9", "host-b:2:bbb", 30, "http://10.0.0.6:3101")

    assert first.acquire() and first.fencing_token == 1
    assert not second.acquire()
    assert second.holder() == "host-a:1:aaa"
    assert 29 < second.remaining() <= 30
    assert first.renew()
    row = Shard.objects.get(name="s9")
    assert (row.owner, row.fencing_token, row.sidecar_url) == ("host-a:1:aaa", 1, "http://10.0.0.5:3101")

    Shard.objects.filter(name="s9").update(lease_expires_at=Now() - timedelta(seconds=1))  # host A went quiet
    assert second.acquire() and second.fencing_token == 2
    assert not first.renew(), "the old owner can no longer renew"
    assert first.holder() == "host-b:2:bbb"

    first._release()  # a stale owner's release does not free the new owner's lease
    assert Shard.objects.get(name="s9").owner == "host-b:2:bbb"
    second._release()
    row = Shard.objects.get(name="s9")
    assert (row.owner, row.sidecar_url, row.lease_expires_at, row.fencing_token) == ("", "", None, 2)
    third = ShardLease("s9", "host-c:3:ccc", 30, "http://10.0.0.7:3101")
    assert third.acquire() and third.fencing_token == 3
