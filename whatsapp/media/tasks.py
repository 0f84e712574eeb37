"""The media task: fetch every pending attachment of one inbound message, store it,
transcribe a voice note, then hand the conversation to the bot. Never the webhook's job.

State lives in MediaFile rows, so the task is safe to run twice and to lose: a transient
failure is retried (Celery countdown, well below the broker's visibility timeout) up to
MEDIA_FETCH_RETRIES times, then the attachment is marked failed and the message answered
anyway (the tenant's non-text answer). A lost task is re-driven by the reconciler, which
re-runs the reply task, which asks for the media again (bots.tasks -> media_waiting)."""

from __future__ import annotations

import logging
from datetime import timedelta
from urllib.parse import urlsplit

from celery import shared_task
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from project.logging import log_context
from whatsapp.media.attachments import Attachment
from whatsapp.media.fetch import Fetched, Permanent, Transient, check_type, fetch
from whatsapp.media.models import MediaFile
from whatsapp.media.sidecar_source import fetch_from_sidecar, forget_on_sidecar
from whatsapp.models import Message

log = logging.getLogger("whatsapp.media")

EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp", "audio/ogg": ".ogg",
              "audio/mpeg": ".mp3", "audio/mp4": ".m4a", "audio/amr": ".amr", "video/mp4": ".mp4",
              "application/pdf": ".pdf"}
BACKOFF_CAP = 60.0


@shared_task(bind=True, name="whatsapp.media.process_media", acks_late=True, max_retries=None)
def process_media(self, message_id: int) -> None:
    message = Message.objects.select_related("tenant").filter(pk=message_id).first()
    if message is None:
        return
    with log_context(tenant=message.tenant.slug, message_id=message.pk, correlation_id=str(message.correlation_id)):
        # One file per run: a download and a transcription fit in the task's time limit
        # (celeryconfig), several might not.
        media = MediaFile.objects.filter(message=message, state=MediaFile.State.PENDING).order_by("index").first()
        if media is not None:
            wait = settle(media, message)
            if wait is None and message.provider == "baileys":
                forget_on_sidecar(message.tenant, media.source_url)
            if wait is not None or MediaFile.objects.filter(message=message, state=MediaFile.State.PENDING).exists():
                raise self.retry(countdown=wait or 0)
        copy_transcript(message)
        hand_to_bot(message)


def settle(media: MediaFile, message: Message) -> float | None:
    """Fetch, store and transcribe one attachment; the seconds to wait before another
    try, or None when it is settled (stored or failed)."""
    try:
        if not media.file:
            store(media, download(media, message))
        if media.kind == "audio":
            transcribe(media, message.tenant)
    except Permanent as exc:
        fail(media, exc.failure, str(exc))
        return None
    except (Transient, _TranscriptTransient) as exc:
        media.attempts += 1
        if media.attempts <= settings.MEDIA_FETCH_RETRIES:
            MediaFile.objects.filter(pk=media.pk).update(attempts=media.attempts, error=str(exc))
            log.info("media not ready yet (%s); trying again", exc, extra={"media_id": media.pk})
            return min(BACKOFF_CAP, settings.MEDIA_RETRY_BACKOFF * 2 ** (media.attempts - 1))
        if not isinstance(exc, _TranscriptTransient):
            fail(media, MediaFile.Failure.DOWNLOAD_FAILED, f"{exc} (after {media.attempts} attempts)")
            return None
        # The recording is stored; only its transcript failed (the tenant's non-text answer).
        finish_transcript(media, MediaFile.Transcript.FAILED, error=str(exc))
    MediaFile.objects.filter(pk=media.pk, state=MediaFile.State.PENDING).update(
        state=MediaFile.State.STORED, error="", settled_at=timezone.now(), attempts=media.attempts)
    return None


def download(media: MediaFile, message: Message) -> Fetched:
    check_type(media.content_type)  # the declared type: a wrong one is not even fetched
    if not media.source_url:
        raise Permanent("refused", "no URL to fetch the media from")
    if message.provider == "baileys":
        # The sidecar downloaded it from WhatsApp already; source_url is its id there.
        return fetch_from_sidecar(message.tenant, media.source_url, media.size)
    return fetch(media.source_url, twilio_auth_for(media.source_url) if message.provider == "twilio" else None)


def twilio_auth_for(url: str) -> tuple[str, str] | None:
    """The account's credentials, only for a URL on Twilio's API host (or the one
    TWILIO_API_BASE_URL names): a MediaUrl is signed by Twilio, but the token is worth
    a second lock."""
    host = (urlsplit(url).hostname or "").lower()
    hosts = {"api.twilio.com"}
    if settings.TWILIO_API_BASE_URL:
        hosts.add((urlsplit(settings.TWILIO_API_BASE_URL).hostname or "").lower())
    return (settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN) if host in hosts else None


def store(media: MediaFile, fetched: Fetched) -> None:
    name = media_name(media, fetched.content_type)
    saved = default_storage.save(name, ContentFile(fetched.data))
    # Conditional: a second copy of the task that got here first keeps its file.
    if not MediaFile.objects.filter(pk=media.pk, file="").update(
            file=saved, size=len(fetched.data), content_type=fetched.content_type):
        default_storage.delete(saved)
        media.refresh_from_db()
        return
    media.file.name, media.size, media.content_type = saved, len(fetched.data), fetched.content_type
    log.info("media stored", extra={"media_id": media.pk, "bytes": len(fetched.data),
                                    "content_type": fetched.content_type})


def media_name(media: MediaFile, content_type: str) -> str:
    return media.file.field.generate_filename(media, EXTENSIONS.get(content_type, ".bin"))


class _TranscriptTransient(Exception):
    pass


def transcribe(media: MediaFile, tenant) -> None:
    from bots.transcription import TranscriptionError
    from bots.transcription import transcribe as speech_to_text

    if media.transcript_state:
        return
    if not tenant.transcribe_voice_notes:
        finish_transcript(media, MediaFile.Transcript.OFF)
        return
    with default_storage.open(media.file.name, "rb") as handle:
        data = handle.read()
    try:
        text = speech_to_text(data, media.content_type)
    except TranscriptionError as exc:
        if exc.transient:
            raise _TranscriptTransient(str(exc)) from None
        finish_transcript(media, MediaFile.Transcript.FAILED, error=str(exc))
        return
    if not text:
        finish_transcript(media, MediaFile.Transcript.FAILED, error="nothing was recognised in the recording")
        return
    finish_transcript(media, MediaFile.Transcript.DONE, text=text)


def finish_transcript(media: MediaFile, state: str, text: str = "", error: str = "") -> None:
    MediaFile.objects.filter(pk=media.pk).update(transcript_state=state, transcript=text, transcript_error=error)
    media.transcript_state, media.transcript, media.transcript_error = state, text, error
    if error:
        log.warning("voice note not transcribed: %s", error, extra={"media_id": media.pk})


def fail(media: MediaFile, failure: str, error: str) -> None:
    # Conditional: a second copy of the task whose download came too late (the sidecar
    # deletes its copy once the first one stored it: 404) does not undo the stored file.
    MediaFile.objects.filter(pk=media.pk, state=MediaFile.State.PENDING, file="").update(
        state=MediaFile.State.FAILED, failure=failure, error=error, settled_at=timezone.now(),
        attempts=media.attempts)
    log.warning("media failed: %s", error, extra={"media_id": media.pk, "failure": failure})


def copy_transcript(message: Message) -> None:
    """The transcript is what the bot reads: it becomes the message's body (a voice note
    has no caption), marked as a transcript by its media type (bots.memory)."""
    texts = list(MediaFile.objects.filter(message=message, transcript_state=MediaFile.Transcript.DONE)
                 .order_by("index").values_list("transcript", flat=True))
    if texts and not message.body:
        Message.objects.filter(pk=message.pk, body="").update(body="\n".join(texts))


def hand_to_bot(message: Message) -> None:
    """Answer the contact's newest waiting message: in a burst (a photo, then text) that
    message's task answers everything; this one's alone would step aside for it."""
    from bots.dispatch import newer_pending, schedule_reply

    schedule_reply(newer_pending(message) or message)


def media_pending_since() -> Subquery:
    """When a message's oldest attachment still waiting to be fetched was recorded (None:
    none waits): an expression, read with the message (bots.tasks.pending_batch)."""
    return Subquery(MediaFile.objects.filter(message_id=OuterRef("pk"), state=MediaFile.State.PENDING)
                    .order_by("created_at").values("created_at")[:1])


def media_waiting(batch: list[Message]) -> bool:
    """Whether any message of the batch still waits for its media (the reply task then
    does nothing: the media task hands the conversation to the bot when done). A media
    task that looks lost (older than the reconciler's grace period) is started again.
    The batch's messages carry media_pending_since (read with them)."""
    pending = [m for m in batch if m.media_pending_since is not None]
    stale_before = timezone.now() - timedelta(seconds=settings.RECONCILE_GRACE_SECONDS)
    for message in pending:
        if message.media_pending_since < stale_before:
            try:
                process_media.delay(message.pk)
            except Exception:  # noqa: BLE001 - the reconciler tries again
                log.exception("could not enqueue the media task", extra={"message_id": message.pk})
    return bool(pending)


def record_media(message: Message, media: list[tuple[str, str] | Attachment]) -> None:
    """Called by the webhook, in its transaction: one pending row per attachment (Twilio's
    (url, content type) pairs, or Attachments); one the provider could not get is recorded
    failed at once, so staff see why."""
    rows = []
    for n, item in enumerate(media):
        a = item if isinstance(item, Attachment) else Attachment(*item)
        row = MediaFile(message=message, index=n, source_url=a.source[:500], content_type=a.content_type[:100],
                        size=a.size)
        if a.failure:
            row.state, row.failure, row.error, row.settled_at = MediaFile.State.FAILED, a.failure, a.error, timezone.now()
        rows.append(row)
    MediaFile.objects.bulk_create(rows)

