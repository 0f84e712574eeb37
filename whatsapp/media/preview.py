"""How media looks in the admin: a thumbnail for a photo, an audio player and the
transcript for a voice note, a download link for anything else, and what failed; and the
inline that shows a message's media on its page (whatsapp.admin.MessageAdmin)."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from whatsapp.media.models import MediaFile


def may_view(request) -> bool:
    # Media is part of a message: whoever may read messages may see it.
    return request.user.has_perm("whatsapp.view_message") or request.user.has_perm("whatsapp.change_message")


def file_url(media: MediaFile) -> str:
    return reverse("admin:whatsapp_mediafile_file", args=[media.pk])


@admin.display(description="Media")
def preview(media: MediaFile):
    return render_preview(media, file_url(media))


def render_preview(media: MediaFile, url: str):
    """The preview with the file served from `url` (the admin's file view, or the
    inbox's for staff who use the inbox without the admin's message permissions)."""
    if not media.file:
        if media.state == MediaFile.State.FAILED:
            return format_html('<strong style="color:#ba2121">{}</strong>: {}', media.get_failure_display(),
                               media.error)
        return media.get_state_display()
    if media.kind == "image":
        return format_html('<a href="{}"><img src="{}" alt="photo" style="max-width:160px;max-height:160px"></a>',
                           url, url)
    if media.kind == "audio":
        transcript = media.transcript or media.get_transcript_state_display()
        if media.transcript_error:
            transcript = f"{transcript}: {media.transcript_error}"
        return format_html('<audio controls preload="none" src="{}"></audio><br><em>Transcript:</em> {}',
                           url, transcript)
    if media.filename:
        return format_html('<a href="{}" download>Download {} ({}, {} bytes)</a>', url, media.filename,
                           media.content_type, media.size)
    return format_html('<a href="{}" download>Download {} ({} bytes)</a>', url, media.content_type, media.size)


class MediaInline(admin.TabularInline):
    model = MediaFile
    extra = 0
    can_delete = False
    fields = ("index", preview, "content_type", "size", "state", "failure", "attempts", "transcript_state")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return may_view(request)
