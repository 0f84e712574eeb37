"""The media list and the staff-only file view. Files are served only through the admin
(staff who may view messages), never from a public URL."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.urls import path

from whatsapp.admin_records import RecordAdmin
from whatsapp.media.models import MediaFile
from whatsapp.media.preview import may_view, preview
from whatsapp.media.serve import file_response


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
        return file_response(media)
