"""A dead letter's reason in words, with what staff can do about it. Provider error
codes first (the most specific), then the policy's reason."""

from __future__ import annotations

from whatsapp.models import DeadLetter

R = DeadLetter.Reason

# Twilio's error codes (https://www.twilio.com/docs/api/errors).
PROVIDER_CODES: dict[str, tuple[str, str]] = {
    "21211": ("The number is not on WhatsApp (or is not a valid number).",
              "Check the number with the customer another way; then discard."),
    "21610": ("The customer unsubscribed (replied STOP).", "Discard: do not message them."),
    "63016": ("Outside the 24-hour window: only an approved template may be sent.",
              "Set the tenant's Twilio template (ContentSid), then requeue."),
    "63024": ("The recipient cannot receive this message (invalid or unreachable).",
              "Check the number; discard if it is wrong."),
    "63003": ("WhatsApp could not find the recipient.", "Check the number; discard if it is wrong."),
    "63018": ("WhatsApp's rate limit for this sender was hit.", "Requeue in a few minutes."),
    "20003": ("Twilio refused our credentials.", "Fix TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN, then requeue."),
    "20429": ("Twilio's rate limit was hit.", "Requeue in a few minutes."),
}

REASONS: dict[str, tuple[str, str]] = {
    R.EXHAUSTED: ("Every provider kept failing until the retries ran out.",
                  "Check the provider's status (dashboard, Sessions page); requeue when it is back."),
    R.DEADLINE: ("The reply could not be delivered before its deadline.",
                 "Requeue if it is still worth sending; otherwise discard."),
    R.PERMANENT: ("The provider refused the message for good.", "Read the error; fix it, then requeue or discard."),
    R.AMBIGUOUS: ("Nobody can tell whether the reply left: the provider did not confirm it.",
                  "Ask the customer (or look at the phone) whether it arrived; requeue sends a new copy."),
    R.NO_TEMPLATE: ("Outside the 24-hour window and the tenant has no template.",
                    "Set the tenant's Twilio template (ContentSid), then requeue."),
    R.NO_PROVIDER: ("The tenant has no provider enabled.", "Enable WhatsApp Web or Twilio on the tenant; requeue."),
    R.NOT_ANSWERED: ("The bot did not answer in time.",
                     "Check that an `ai` worker runs and the bot works (Test the bot); then answer now."),
    R.TOO_LARGE: ("The message was longer than the webhook accepts.", "Store and answer it now."),
    R.BAD_SIGNATURE: ("The webhook did not accept the sidecar's signature (clock skew or a changed secret).",
                      "Make SIDECAR_WEBHOOK_SECRET match on both sides; then store and answer."),
    R.UNKNOWN_TENANT: ("No tenant had this name when the message came in (renamed?).",
                       "Give the tenant this slug again (or discard); then store and answer."),
    R.REFUSED: ("The webhook refused the message.", "Read the error; store and answer if it is fixed."),
}


def explain(reason: str, error_code: str = "") -> tuple[str, str]:
    """(what happened, what to do)."""
    if error_code in PROVIDER_CODES:
        return PROVIDER_CODES[error_code]
    return REASONS.get(reason, (str(reason), ""))
