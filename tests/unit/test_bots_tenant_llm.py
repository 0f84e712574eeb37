"""A tenant's own LLM URL (issue 11): the server's key never goes there, and it cannot
reach the server's own network (loopback, link-local, private addresses) unless the
operator allows the host; checked in the admin form and again on every call, on the
address actually connected to."""

from __future__ import annotations

import pytest

from bots.tasks import generate_reply
from tests.fakes.llm_server import FakeLLM
from tests.support.tenant_admin import tenant_form
from whatsapp.models import Contact, Direction, Message, Status

pytestmark = pytest.mark.django_db

SERVER_KEY = "sk-server-SECRET-1111"


@pytest.fixture
def shop(tenant, llm, settings):
    """A tenant on the LLM engine; the server's URL is the `llm` fake, with the server key."""
    settings.LLM_API_KEY = SERVER_KEY
    settings.LLM_TIMEOUT, settings.LLM_DEADLINE = 0.5, 2.0
    settings.LLM_ALLOWED_INTERNAL_HOSTS = []
    settings.LLM_TENANT_REQUIRE_HTTPS = False
    tenant.bot_engine = "llm"
    tenant.fallback_reply = "We will answer soon."
    tenant.save()
    return tenant


@pytest.fixture
def tenant_llm():
    """A second fake LLM: the server a tenant points its URL at (perhaps its owner's)."""
    fake = FakeLLM().start()
    yield fake
    fake.stop()


def reply_to(tenant, text: str) -> Message:
    contact, _ = Contact.objects.get_or_create(tenant=tenant, phone="+15551234567")
    Message.objects.filter(tenant=tenant).delete()
    inbound = Message.objects.create(tenant=tenant, contact=contact, direction=Direction.INBOUND, body=text,
                                     status=Status.RECEIVED)
    generate_reply(inbound.pk)
    return Message.objects.get(in_reply_to=inbound)


def test_the_server_key_goes_only_to_the_server_url(shop, llm, tenant_llm, settings):
    settings.LLM_ALLOWED_INTERNAL_HOSTS = ["127.0.0.1"]  # the fakes listen on loopback
    assert reply_to(shop, "hi").engine == "llm"
    shop.llm_base_url = tenant_llm.base_url
    shop.save()

    assert reply_to(shop, "hi again").engine == "llm"

    (to_server,) = llm.requests
    assert to_server["headers"]["Authorization"] == f"Bearer {SERVER_KEY}"
    (to_tenant,) = tenant_llm.requests
    assert "Authorization" not in to_tenant["headers"], "no key at all rather than the server's"


def test_a_tenant_url_gets_the_tenant_own_key(shop, tenant_llm, settings):
    settings.LLM_ALLOWED_INTERNAL_HOSTS = ["127.0.0.1"]
    shop.llm_base_url, shop.llm_api_key = tenant_llm.base_url, "sk-tenant-own"
    shop.save()

    reply_to(shop, "hi")

    assert tenant_llm.requests[0]["headers"]["Authorization"] == "Bearer sk-tenant-own"


def test_a_tenant_url_that_reaches_loopback_is_refused_at_call_time(shop, tenant_llm):
    # Written straight to the database (as if the name resolved elsewhere when saved):
    # "localhost" is only a name, the guard looks at the address the socket connected to.
    shop.llm_base_url = tenant_llm.base_url.replace("127.0.0.1", "localhost")
    shop.save()

    reply = reply_to(shop, "what are your hours?")

    assert (reply.body, reply.engine) == ("We will answer soon.", "fallback")
    assert tenant_llm.requests == [], "nothing was sent to the internal address"


class RebindingResolver:
    """DNS as an attacker's name server answers it (DNS rebinding): a public address the
    first time the name is looked up, loopback ever after. Other names resolve as usual."""

    NAME, PUBLIC = "rebind.attacker.test", "93.184.215.14"

    def __init__(self, real):
        self.real, self.lookups = real, 0

    def __call__(self, host, port, *args, **kwargs):
        if host != self.NAME:
            return self.real(host, port, *args, **kwargs)
        self.lookups += 1
        address = self.PUBLIC if self.lookups == 1 else "127.0.0.1"
        return self.real(address, port, *args, **kwargs)


def test_a_name_that_resolves_public_when_checked_and_loopback_when_connecting_gets_nothing(
        shop, tenant_llm, monkeypatch):
    import socket

    resolver = RebindingResolver(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    shop.llm_base_url = tenant_llm.base_url.replace("127.0.0.1", RebindingResolver.NAME)
    shop.save()

    reply = reply_to(shop, "hi")

    assert reply.engine == "fallback"
    assert resolver.lookups >= 2, "checked, then resolved again to connect"
    assert tenant_llm.requests == [], "the socket reached loopback and was closed before sending"


def test_an_internal_address_the_operator_allows_is_called(shop, tenant_llm, settings):
    settings.LLM_ALLOWED_INTERNAL_HOSTS = ["ollama.lan", "127.0.0.0/8"]
    shop.llm_base_url = tenant_llm.base_url.replace("127.0.0.1", "localhost")
    shop.save()

    assert reply_to(shop, "hi").engine == "llm"
    assert len(tenant_llm.requests) == 1


def test_a_plain_http_tenant_url_is_refused_when_https_is_required(shop, tenant_llm, settings):
    settings.LLM_TENANT_REQUIRE_HTTPS = True
    settings.LLM_ALLOWED_INTERNAL_HOSTS = ["127.0.0.0/8"]
    shop.llm_base_url = tenant_llm.base_url.replace("127.0.0.1", "localhost")  # not an allowed name
    shop.save()

    assert reply_to(shop, "hi").engine == "fallback"
    assert tenant_llm.requests == []

    shop.llm_base_url = tenant_llm.base_url  # an allowed internal host may use http (a LAN Ollama)
    shop.save()
    assert reply_to(shop, "hi").engine == "llm"


# --- The admin form -----------------------------------------------------------------------

def save_url(admin_client, tenant, url: str):
    return admin_client.post(f"/admin/whatsapp/tenant/{tenant.pk}/change/", tenant_form(tenant, llm_base_url=url))


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/v1",  # cloud metadata
    "http://127.0.0.1:11434/v1",
    "http://localhost:11434/v1",
    "http://10.0.0.5/v1",
    "http://[::1]:8000/v1",
    "http://[::ffff:192.168.1.1]/v1",
    "http://100.64.0.1/v1",  # carrier-grade NAT, not public either
])
def test_the_admin_refuses_an_internal_llm_url_with_a_clear_error(admin_client, shop, url):
    response = save_url(admin_client, shop, url)

    assert response.status_code == 200
    assert "internal address" in response.content.decode()
    shop.refresh_from_db()
    assert shop.llm_base_url == ""


def test_the_admin_accepts_an_internal_host_the_operator_allows(admin_client, shop, settings):
    settings.LLM_ALLOWED_INTERNAL_HOSTS = ["ollama.lan", "10.0.0.5"]
    for url in ("http://ollama.lan:11434/v1", "http://10.0.0.5/v1"):
        assert save_url(admin_client, shop, url).status_code == 302
        shop.refresh_from_db()
        assert shop.llm_base_url == url


def test_the_admin_accepts_a_public_https_url(admin_client, shop, settings):
    settings.LLM_TENANT_REQUIRE_HTTPS = True
    assert save_url(admin_client, shop, "https://1.1.1.1/v1").status_code == 302


@pytest.mark.parametrize(("url", "error"), [
    ("http://1.1.1.1/v1", "Use https"),
    ("ftp://1.1.1.1/v1", "Enter a full http(s) URL"),
    ("https://user:sk-x@1.1.1.1/v1", "not in the URL"),
])
def test_the_admin_refuses_a_malformed_or_plain_http_url(admin_client, shop, settings, url, error):
    settings.LLM_TENANT_REQUIRE_HTTPS = True
    response = save_url(admin_client, shop, url)
    assert error in response.content.decode()
    shop.refresh_from_db()
    assert shop.llm_base_url == ""
