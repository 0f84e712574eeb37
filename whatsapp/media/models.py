"""One MediaFile per attachment of an inbound message. The webhook records it (pending);
whatsapp.media.tasks.process_media fetches it, stores it through Django's storage API and,
for a voice note, transcribes it. Until every attachment of a message is settled (stored
or failed), the bot does not answer that message (bots.tasks asks media_pending)."""

from __future__ import annotations

import uuid

from django.db import models, transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.utils import timezone


def media_path(instance: MediaFile, filename: str) -> str:
    # A random name: nothing about the customer in a path (or a bucket listing).
    return f"media/{instance.message.tenant_id}/{timezone.now():%Y/%m}/{uuid.uuid4().hex}{filename}"


class MediaFile(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", "Waiting to be fetched"
        STORED = "stored", "Stored"
        FAILED = "failed", "Failed"

    class Failure(models.TextChoices):
        TOO_LARGE = "too_large", "Too large (MEDIA_MAX_BYTES)"
        WRONG_TYPE = "wrong_type", "Type not accepted (MEDIA_ALLOWED_TYPES)"
        DOWNLOAD_FAILED = "download_failed", "Download failed after retries"
        REFUSED = "refused", "The provider refused the download"

    class Transcript(models.TextChoices):
        NONE = "", "Not transcribed"
        DONE = "done", "Transcribed"
        FAILED = "failed", "Transcription failed"
        OFF = "off", "Transcription off for this tenant"

    message = models.ForeignKey("whatsapp.Message", on_delete=models.CASCADE, related_name="media")
    index = models.PositiveSmallIntegerField(default=0, help_text="N of MediaUrlN.")
    # Twilio's MediaUrlN: fetched with the account's credentials (never shown as a link).
    source_url = models.CharField(max_length=500, blank=True)
    content_type = models.CharField(max_length=100, blank=True)
    # The name a document is sent under (staff uploads; whatsapp.media.outbound).
    filename = models.CharField(max_length=200, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING, db_index=True)
    failure = models.CharField(max_length=20, choices=Failure.choices, blank=True)
    error = models.TextField(blank=True, help_text="What went wrong, in words, for staff.")
    attempts = models.PositiveSmallIntegerField(default=0)
    file = models.FileField(upload_to=media_path, max_length=300, blank=True)
    size = models.PositiveIntegerField(null=True, blank=True)
    transcript = models.TextField(blank=True)
    transcript_state = models.CharField(max_length=10, choices=Transcript.choices, blank=True)
    transcript_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["message_id", "index"]
        constraints = [models.UniqueConstraint(fields=["message", "index"], name="media_unique_index")]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.get_state_display()})"

    @property
    def kind(self) -> str:
        """image, audio, video, document..., from the MIME type."""
        major = (self.content_type or "").split("/")[0]
        return major if major in {"image", "audio", "video"} else "document"

    @property
    def settled(self) -> bool:
        return self.state != self.State.PENDING


@receiver(post_delete, sender=MediaFile)
def _delete_stored_file(sender, instance: MediaFile, **kwargs) -> None:
    """Retention and erasure delete messages (and so their media rows) through the ORM:
    the file goes too, once the deletion is committed (a rolled-back one keeps it)."""
    name = instance.file.name
    if name:
        storage = instance.file.storage
        transaction.on_commit(lambda: storage.delete(name))


def sent_media(message) -> MediaFile | None:
    """The stored file an outbound message carries (a staff photo or document), if any.
    Text messages (most) cost no query."""
    if message.media_type == "text":
        return None
    return MediaFile.objects.filter(message=message, state=MediaFile.State.STORED).exclude(file="").first()
