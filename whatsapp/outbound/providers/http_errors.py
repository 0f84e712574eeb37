"""Whether a failed HTTP request may have reached the provider: the line between
"transient" (nothing left, send again) and "ambiguous" (look it up before sending again),
the same for every provider that speaks HTTP through requests."""

from __future__ import annotations

import requests

# What urllib3/requests say when no connection was ever made.
_NEVER_CONNECTED = ("refused", "name or service", "failed to resolve", "no route", "newconnectionerror")


def request_never_left(exc: BaseException) -> bool:
    """A refused or unresolvable connection, or a connect timeout, never carried the
    request; a reset or a dropped connection after connecting may have, and so may a
    read timeout."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if not isinstance(exc, requests.exceptions.ConnectionError):
        return False
    text = str(exc).lower()
    return any(s in text for s in _NEVER_CONNECTED)
