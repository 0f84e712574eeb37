"""Who may read the ops endpoints' details: a caller with the ops bearer token
(METRICS_TOKEN), or a caller on this machine's loopback interface that did not come
through a proxy."""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings


def has_token(request) -> bool:
    """`Authorization: Bearer <METRICS_TOKEN>`, compared in constant time; never true
    while no token is configured."""
    token = settings.METRICS_TOKEN
    if not token:
        return False
    scheme, _, given = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def from_loopback(request) -> bool:
    """The client is this machine and no proxy said it forwards someone else."""
    if "HTTP_X_FORWARDED_FOR" in request.META or "HTTP_FORWARDED" in request.META:
        return False  # a proxy on this host would make every client look local
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False
