"""Media in the admin: a thumbnail for a photo, an audio player and the transcript for a
voice note, a download link for anything else, and what failed. Files are served only
through the admin (staff who may view messages), never from a public URL."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404
from django.urls import path, reverse
from django.utils.html import format_html

from whatsapp.media.models import MediaFile

# Shown inline by the browser; anything else is downloaded (an HTML or SVG file opened
# inline would run in the admin's origin).
INLINE_TYPES = ("image/jpeg", "image/png", "image/webp", "audio/", "video/")


def may_view(request) -> bool:
    # Media is part of a message: whoever may read messages may see it.
    return request.user.has_perm("whatsapp.view_message") or request.user.has_perm("whatsapp.change_message")


def file_url(media: MediaFile) -> str:
    return reverse("admin:whatsapp_mediafile_file", args=[media.pk])


@admin.display(description="Media")
def preview(media: MediaFile):
    if not media.file:
        if media.state == MediaFile.State.FAILED:
            return format_html('<strong style="color:#ba2121">{}</strong>: {}', media.get_failure_display(),
                               media.error)
        return media.get_state_display()
    url = file_url(media)
    if media.kind == "image":
        return format_html('<a href="{}"><img src="{}" alt="photo" style="max-width:160px;max-height:160px"></a>',
                           url, url)
    if media.kind == "audio":
        transcript = media.transcript or media.get_transcript_state_display()
        if media.transcript_error:
            transcript = f"{transcript}: {media.transcript_error}"
        return format_html('<audio controls preload="none" src="{}"></audio><br><em>Transcript:</em> {}',
                           url, transcript)
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


@admin.register(MediaFile)
class MediaFileAdmin(admin.ModelAdmin):
    list_display = ("id", "created_at", "message", "content_type", preview, "state", "failure", "transcript_state")
    list_filter = ("state", "failure", "transcript_state")
    list_select_related = ("message",)
    readonly_fields = ("message", "index", preview, "content_type", "size", "state", "failure", "error", "attempts",
                       "transcript_state", "transcript", "transcript_error", "created_at", "settled_at")
    exclude = ("source_url", "file")  # the provider's URL needs the account's credentials: no use to staff

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return may_view(request)

    def has_module_permission(self, request):
        return may_view(request)

    def get_urls(self):
        view = self.admin_site.admin_view(self.file_view)
        return [path("<int:pk>/file/", view, name="whatsapp_mediafile_file"), *super().get_urls()]

    def file_view(self, request, pk: int):
        if not may_view(request):
            raise PermissionDenied
        media = MediaFile.objects.filter(pk=pk).exclude(file="").first()
        if media is None:
            raise Http404("no stored file")
        try:
            handle = default_storage.open(media.file.name, "rb")
        except OSError:
            raise Http404("the stored file is gone") from None
        inline = media.content_type.startswith(INLINE_TYPES)
        response = FileResponse(handle, content_type=media.content_type or "application/octet-stream",
                                as_attachment=not inline, filename=media.file.name.rsplit("/", 1)[-1])
        response["Content-Security-Policy"] = "default-src 'none'; media-src 'self'; img-src 'self'; sandbox"
        response["Cache-Control"] = "private, no-store"
        return response
