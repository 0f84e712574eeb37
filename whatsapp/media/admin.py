"""The media list and the staff-only file view. Files are served only through the admin
(staff who may view messages), never from a public URL."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404
from django.urls import path

from whatsapp.admin_records import RecordAdmin
from whatsapp.media.models import MediaFile
from whatsapp.media.preview import may_view, preview

# Shown inline by the browser; anything else is downloaded (an HTML or SVG file opened
# inline would run in the admin's origin).
INLINE_TYPES = ("image/jpeg", "image/png", "image/webp", "audio/", "video/")


@admin.register(MediaFile)
class MediaFileAdmin(RecordAdmin):
    list_display = ("id", "created_at", "message", "content_type", preview, "state", "failure", "transcript_state")
    list_filter = ("state", "failure", "transcript_state")
    list_select_related = ("message",)
    readonly_fields = ("message", "index", preview, "content_type", "size", "state", "failure", "error", "attempts",
                       "transcript_state", "transcript", "transcript_error", "created_at", "settled_at")
    exclude = ("source_url", "file")  # the provider's URL needs the account's credentials: no use to staff

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
