"""Downloading one attachment, bounded in size and time, and saying what went wrong in a
way the task can act on: `Permanent` (too large, wrong type, refused: retrying cannot
help) or `Transient` (network, 5xx, an expired storage URL: try again later).

Twilio protects media with the account's credentials by default and answers the MediaUrl
with a redirect to a short-lived storage URL. requests drops the Authorization header
when a redirect leaves the host, so the account's credentials never reach the storage
host (which would refuse a request carrying two kinds of authentication anyway)."""

from __future__ import annotations

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


def fetch(url: str, auth: tuple[str, str] | None) -> Fetched:
    """The file at url (following redirects), or FetchError. Reads at most
    MEDIA_MAX_BYTES and gives up after MEDIA_FETCH_TIMEOUT seconds in all."""
    limit = settings.MEDIA_MAX_BYTES
    deadline = time.monotonic() + settings.MEDIA_FETCH_TIMEOUT
    timeout = min(10.0, settings.MEDIA_FETCH_TIMEOUT)
    session = requests.Session()
    session.trust_env = False
    try:
        with session.get(url, auth=auth, stream=True, timeout=(timeout, timeout)) as response:
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
            if declared.isdigit() and int(declared) > limit:
                raise too_large(int(declared))
            chunks, size = [], 0
            for chunk in response.iter_content(64 * 1024):
                size += len(chunk)
                if size > limit:
                    raise too_large(size)
                if time.monotonic() > deadline:
                    raise Transient(f"download took longer than {settings.MEDIA_FETCH_TIMEOUT:g}s")
                chunks.append(chunk)
            return Fetched(b"".join(chunks), base_type(content_type))
    except requests.Timeout as exc:
        raise Transient("the download timed out") from exc
    except requests.RequestException as exc:
        raise Transient(f"could not download ({type(exc).__name__})") from exc
    finally:
        session.close()
