"""Downloading one attachment, bounded in size and time, and saying what went wrong in a
way the task can act on: `Permanent` (too large, wrong type, refused: retrying cannot
help) or `Transient` (network, 5xx, an expired storage URL: try again later).

Twilio protects media with the account's credentials by default and answers the MediaUrl
with a redirect to a short-lived storage URL. requests drops the Authorization header
when a redirect leaves the host, so the account's credentials never reach the storage
host (which would refuse a request carrying two kinds of authentication anyway)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass

import requests
from django.conf import settings


class FetchError(Exception):
    failure = "download_failed"


class Transient(FetchError):
    pass


class Permanent(FetchError):
    def __init__(self, failure: str, message: str):
        super().__init__(message)
        self.failure = failure


@dataclass(frozen=True)
class Fetched:
    data: bytes
    content_type: str


def base_type(content_type: str) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def check_type(content_type: str) -> None:
    if base_type(content_type) not in {t.lower() for t in settings.MEDIA_ALLOWED_TYPES}:
        raise Permanent("wrong_type", f"type {base_type(content_type) or 'unknown'} is not in MEDIA_ALLOWED_TYPES")


def too_large(size: int) -> Permanent:
    return Permanent("too_large", f"{size} bytes or more; MEDIA_MAX_BYTES is {settings.MEDIA_MAX_BYTES}")


def fetch(url: str, auth: tuple[str, str] | requests.auth.AuthBase | None) -> Fetched:
    """The file at url (following redirects), or FetchError. Reads at most
    MEDIA_MAX_BYTES and gives up after MEDIA_FETCH_TIMEOUT seconds in all."""
    total = settings.MEDIA_FETCH_TIMEOUT
    deadline = time.monotonic() + total
    timeout = min(10.0, total)
    session = requests.Session()
    session.trust_env = False
    try:
        with session.get(url, auth=auth, stream=True, timeout=(timeout, timeout)) as response:
            # A server that drips a byte now and then never trips the read timeout: at the
            # deadline the watchdog shuts the socket under the blocked read.
            watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), _cut, (response,))
            watchdog.daemon = True
            watchdog.start()
            try:
                return _body(response, deadline)
            finally:
                watchdog.cancel()
    except FetchError:
        raise
    except (requests.RequestException, OSError, ValueError) as exc:
        if time.monotonic() >= deadline:
            raise Transient(f"the download took longer than {total:g}s") from exc
        if isinstance(exc, requests.Timeout):
            raise Transient("the download timed out") from exc
        raise Transient(f"could not download ({type(exc).__name__})") from exc
    finally:
        session.close()


def _body(response: requests.Response, deadline: float) -> Fetched:
    limit = settings.MEDIA_MAX_BYTES
    status = response.status_code
    if status in (401, 403, 404, 410) and not response.history:
        # The provider itself refused (wrong credentials, media deleted).
        raise Permanent("refused", f"HTTP {status} from the provider")
    if status == 429 or status >= 400:
        # From the storage host: usually an expired signed URL; a new redirect helps.
        raise Transient(f"HTTP {status} while downloading")
    content_type = response.headers.get("Content-Type", "")
    check_type(content_type)
    declared = response.headers.get("Content-Length", "")
    declared_size = int(declared) if declared.isascii() and declared.isdigit() else None
    if declared_size is not None and declared_size > limit:
        raise too_large(declared_size)
    chunks, size = [], 0
    for chunk in response.iter_content(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise too_large(size)
        chunks.append(chunk)
    if time.monotonic() >= deadline or (declared_size is not None and size < declared_size):
        raise Transient(f"the download was cut short ({size} of {declared_size} bytes)")
    return Fetched(b"".join(chunks), base_type(content_type))


def _cut(response: requests.Response) -> None:
    connection = getattr(response.raw, "_connection", None)
    sock = getattr(connection, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
