"""The one interface every provider client implements, and its one error type."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from whatsapp.models import Message

class ErrorKind(StrEnum):
    """What a failed send means for the delivery policy; each provider maps its own
    vendor codes to one of these."""

    TRANSIENT = "transient"  # try again later (5xx, 429, connection refused)
    PERMANENT = "permanent"  # this provider will never take it (invalid number, 24 h window)
    AMBIGUOUS = "ambiguous"  # the request may have left: resolve before sending again
    UNAVAILABLE = "unavailable"  # cannot send now (session down, sidecar unreachable): next provider at once
    PACED = "paced"  # not a failure: this send's slot is `retry_after` seconds away (pacing)


TRANSIENT, PERMANENT, AMBIGUOUS, UNAVAILABLE, PACED = (
    ErrorKind.TRANSIENT, ErrorKind.PERMANENT, ErrorKind.AMBIGUOUS, ErrorKind.UNAVAILABLE, ErrorKind.PACED,
)


class ProviderError(Exception):
    def __init__(self, message: str, kind: ErrorKind = TRANSIENT, code: str = "",
                 retry_after: float | None = None):
        super().__init__(message)
        self.kind = kind
        self.code = str(code or "")
        self.retry_after = retry_after

    @property
    def permanent(self) -> bool:
        return self.kind == PERMANENT

    @property
    def says_nothing_of_health(self) -> bool:
        """A permanent error (a bad number, a closed 24-hour window) or a send deferred by
        pacing is not the provider failing: breakers do not count it."""
        return self.kind in (PERMANENT, PACED)


@dataclass
class OutgoingPart:
    """One provider request: a part of a (possibly split) answer, or a template."""

    message: Message
    to: str  # E.164
    text: str
    key: str  # idempotency key of this part
    template_sid: str = ""
    template_variables: dict = field(default_factory=dict)
    # A staff photo or document (whatsapp.media.models.MediaFile), sent with the first part;
    # `text` is then its caption.
    media: object | None = None


class ProviderClient(Protocol):
    """A provider's client (not models.Provider, the provider's name stored on rows)."""

    name: str
    max_body: int

    def can_send(self, message: Message) -> bool:
        """False when the provider cannot take this message now (session down); no retry."""

    def template_for(self, message: Message) -> str | None:
        """None when free text may go out now; else the template (ContentSid) the message
        must go out as instead, "" when it needs one and there is none (Twilio's window)."""

    def wants_template(self, error: ProviderError) -> bool:
        """Whether this refusal means "only a template now" (Twilio's 63016)."""

    def send(self, part: OutgoingPart) -> str:
        """Send one part; return the provider's message id or raise ProviderError."""

    def lookup(self, part: OutgoingPart, since) -> str | None:
        """After an ambiguous failure: the provider id if that part was sent, None if it
        certainly was not; raise ProviderError(kind=AMBIGUOUS) if it still cannot tell."""
