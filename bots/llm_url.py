"""Which LLM base URL a tenant may point the bot at, checked when the tenant is saved and
again on every call (the name may resolve elsewhere by then: DNS rebinding).

Anyone who can edit a tenant could otherwise make the server call its own network:
loopback, link-local (cloud metadata at 169.254.169.254), private and other non-public
addresses are refused unless the operator lists the host in LLM_ALLOWED_INTERNAL_HOSTS
(a self-hosted Ollama on the LAN: "ollama.lan,10.0.0.5", or a network "10.0.0.0/24").
Outside that list a tenant URL must be https when LLM_TENANT_REQUIRE_HTTPS is on (the
production default).

At call time the name is resolved and checked again before connecting, and then the
address the socket actually connected to is checked before anything is sent, so a name
that resolves to a public address for the check and to a private one for the connection
(DNS rebinding) gains nothing. Proxies from the environment are not used
for tenant URLs (the proxy would resolve the name, out of our sight).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from bots.engines.base import EngineError


class BlockedURL(EngineError):
    """The URL, or the address it reached, is not allowed. The text is shown to staff;
    the engine falls back to the rules engine as for any other failure."""


def _allowed_entries() -> tuple[set[str], list[ipaddress._BaseNetwork]]:
    names, networks = set(), []
    for entry in settings.LLM_ALLOWED_INTERNAL_HOSTS:
        entry = entry.strip().lower()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            names.add(entry.rstrip("."))
    return names, networks


def host_is_allowlisted(host: str) -> bool:
    names, networks = _allowed_entries()
    host = host.lower().rstrip(".")
    if host in names:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in networks)


def address_allowed(address: str, host: str) -> bool:
    """May a call to `host` go to `address` (the resolved or connected IP)?"""
    if host_is_allowlisted(host):
        return True
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    _names, networks = _allowed_entries()
    return (ip.is_global and not ip.is_multicast) or any(ip in network for network in networks)


def check_url_text(url: str) -> tuple[str, int]:
    """The host and port of an acceptable tenant URL, or BlockedURL saying what is wrong."""
    parts = urlsplit(url.strip())
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise BlockedURL("Enter a full http(s) URL, e.g. https://llm.example.com/v1")
    if parts.username or parts.password:
        raise BlockedURL("Put the key in the API key field, not in the URL")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise BlockedURL("The URL's port is not a number") from None
    if parts.scheme != "https" and settings.LLM_TENANT_REQUIRE_HTTPS and not host_is_allowlisted(parts.hostname):
        raise BlockedURL("Use https: the key and the conversation would otherwise cross the network in clear")
    return parts.hostname, port


def validate_tenant_llm_url(url: str) -> None:
    """The save-time check: the text, and what the name resolves to now."""
    _refuse_internal(*check_url_text(url))


def _refuse_internal(host: str, port: int, unresolvable_ok: bool = False) -> None:
    if host_is_allowlisted(host):
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        if unresolvable_ok:
            return
        raise BlockedURL(f"The host {host} cannot be resolved") from None
    for *_rest, sockaddr in infos:
        if not address_allowed(sockaddr[0], host):
            raise BlockedURL(_internal_message(host))


def _internal_message(host: str) -> str:
    return (f"{host} is a loopback, private or otherwise internal address; the server's operator can allow "
            "it in LLM_ALLOWED_INTERNAL_HOSTS")


class _Guard:
    """Mixed into urllib3's connections: no connection to a name that resolves to a
    blocked address, and a socket that connected to one anyway (the name resolved
    differently a moment later) is closed before anything is sent."""

    def _new_conn(self):
        _refuse_internal(self.host, self.port, unresolvable_ok=True)  # urllib3 reports (and we retry) DNS errors
        sock = super()._new_conn()
        try:
            peer = sock.getpeername()[0]
        except OSError:
            sock.close()
            raise
        if not address_allowed(peer, self.host):
            sock.close()
            raise BlockedURL(_internal_message(self.host))
        return sock


class _GuardedHTTPConnection(_Guard, HTTPConnection):
    pass


class _GuardedHTTPSConnection(_Guard, HTTPSConnection):
    pass


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class _GuardedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}


def guarded_session(url: str) -> requests.Session:
    """A session for one call to a tenant's URL: the text is checked now, the address on
    connect. Raises BlockedURL."""
    check_url_text(url)
    session = requests.Session()
    session.trust_env = False  # no environment proxies: we must see the address we reach
    adapter = _GuardedAdapter(max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
