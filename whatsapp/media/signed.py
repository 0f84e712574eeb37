"""Signed, expiring URLs for the files staff send: Twilio needs a public URL to fetch a
media message's file from (it fetches it itself, without our credentials), so the file
is served under PUBLIC_BASE_URL to whoever holds a URL signed by us, for
MEDIA_URL_MAX_AGE seconds. Only files of outbound messages are ever served this way:
a customer's media never gets a public URL."""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.http import HttpResponse
from django.urls import reverse
from django.views.decorators.http import require_safe

from whatsapp.media.models import MediaFile
from whatsapp.media.serve import file_response
from whatsapp.models import Direction

SALT = "whatsapp.media.outbound-url"


def _signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=SALT)


def signed_url(media: MediaFile) -> str:
    token = _signer().sign(str(media.pk))
    return f"{settings.PUBLIC_BASE_URL}{reverse('media-signed', args=[token])}"


@require_safe
def signed_file(request, token: str):
    """No login: Twilio fetches it. 403 for a bad signature, 410 once it expired."""
    try:
        pk = _signer().unsign(token, max_age=settings.MEDIA_URL_MAX_AGE)
    except signing.SignatureExpired:
        return HttpResponse("This link has expired.", status=410, content_type="text/plain")
    except signing.BadSignature:
        return HttpResponse("Bad signature.", status=403, content_type="text/plain")
    media = MediaFile.objects.filter(pk=int(pk), message__direction=Direction.OUTBOUND).exclude(file="").first()
    if media is None:
        return HttpResponse("No such file.", status=404, content_type="text/plain")
    return file_response(media, inline_anything=True)
