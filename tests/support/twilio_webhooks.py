"""Twilio's inbound webhook as Twilio sends it: the form fields and a valid signature."""

from __future__ import annotations

import os
from urllib.parse import urlencode

from django.conf import settings
from twilio.request_validator import RequestValidator


def twilio_form(**fields) -> dict:
    form = {
        "SmsMessageSid": "SM" + os.urandom(16).hex(),
        "NumMedia": "0",
        "ProfileName": "Dana",
        "SmsSid": "",
        "WaId": "15551234567",
        "SmsStatus": "received",
        "Body": "hello",
        "To": "whatsapp:+14155238886",
        "NumSegments": "1",
        "ReferralNumMedia": "0",
        "MessageSid": "",
        "AccountSid": settings.TWILIO_ACCOUNT_SID,
        "From": "whatsapp:+15551234567",
        "ApiVersion": "2010-04-01",
    }
    form["MessageSid"] = form["SmsSid"] = form["SmsMessageSid"]
    form.update(fields)
    return form


def twilio_signature(url: str, form: dict, token: str | None = None) -> str:
    """Exactly what Twilio puts in X-Twilio-Signature (its own validator computes it)."""
    return RequestValidator(token or settings.TWILIO_AUTH_TOKEN).compute_signature(url, form)


def post_twilio(client, path: str, form: dict, signed_url: str | None = None, **extra):
    url = signed_url or f"http://testserver{path}"
    return client.post(
        path, data=urlencode(form), content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=twilio_signature(url, form), **extra,
    )
