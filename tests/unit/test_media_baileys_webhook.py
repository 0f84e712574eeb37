"""The media fields of the sidecar's inbound webhook (whatsapp/sidecar/README.md): a file
the sidecar downloaded becomes a pending MediaFile named by the sidecar's id; one it could
not download (too large, failed after retries) or a malformed field is recorded failed at
once, with the message still accepted (a 4xx would be poison to the sidecar: the message
would be lost). The declared type and size are checked before anything is fetched."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from tests.support.baileys_webhooks import inbound, post_signed
from whatsapp.media.models import MediaFile
from whatsapp.media.tasks import settle
from whatsapp.models import Message

pytestmark = pytest.mark.django_db

MEDIA_ID = "m" + "0123456789abcdef" * 2


def test_a_downloaded_photo_is_recorded_pending_under_the_sidecars_id(client, tenant):
    response = post_signed(client, inbound(type="image", text="is this gluten-free?",
                                           media={"id": MEDIA_ID, "mimetype": "image/jpeg", "size": 1234,
                                                  "fileName": None}))

    assert response.status_code == 200
    message = Message.objects.get()
    assert (message.media_type, message.body) == ("image", "is this gluten-free?")
    media = MediaFile.objects.get(message=message)
    assert (media.state, media.source_url, media.content_type, media.size) == ("pending", MEDIA_ID, "image/jpeg", 1234)


@pytest.mark.parametrize(("error", "failure"), [
    ({"code": "too_large", "detail": "more than 16777216 bytes"}, "too_large"),
    ({"code": "download_failed", "detail": "HTTP 500 (after 3 attempts)"}, "download_failed"),
    ("garbage", "download_failed"),
])
def test_a_file_the_sidecar_could_not_download_is_recorded_failed_and_the_message_kept(client, tenant, error,
                                                                                       failure):
    response = post_signed(client, inbound(type="audio", text="", media={"id": None, "mimetype": "audio/ogg; codecs=opus",
                                                                         "size": 99}, mediaError=error))

    assert response.status_code == 200
    media = MediaFile.objects.get()
    assert (media.state, media.failure, media.content_type) == ("failed", failure, "audio/ogg; codecs=opus")
    assert media.error.startswith("the sidecar could not download it")
    assert media.settled_at is not None


@pytest.mark.parametrize("media", [
    "not an object",
    {"id": "../../auth/acme/creds", "mimetype": "image/jpeg"},
    {"id": MEDIA_ID.upper(), "mimetype": "image/jpeg"},
    {"mimetype": "image/jpeg", "size": -5},
])
def test_a_malformed_media_field_is_recorded_refused_never_a_4xx(client, tenant, media):
    response = post_signed(client, inbound(type="image", text="caption", media=media))

    assert response.status_code == 200
    row = MediaFile.objects.get()
    assert (row.state, row.failure, row.source_url) == ("failed", "refused", "")
    assert Message.objects.get().body == "caption"


def test_a_text_message_has_no_media_and_an_old_sidecars_media_message_none_either(client, tenant):
    post_signed(client, inbound(type="text", text="hi", media={"id": MEDIA_ID, "mimetype": "image/jpeg"}))
    post_signed(client, inbound(type="image", text=""))
    assert Message.objects.count() == 2
    assert not MediaFile.objects.exists()


def test_a_wrong_type_or_a_declared_size_over_the_limit_is_refused_before_any_fetch(client, tenant, settings):
    # Nothing listens at the sidecar's URL: a fetch would be a transient error, not these.
    settings.SIDECAR_URL = "http://127.0.0.1:9"
    settings.MEDIA_MAX_BYTES = 1000
    post_signed(client, inbound(type="document", text="setup.exe",
                                media={"id": MEDIA_ID, "mimetype": "application/x-msdownload", "size": 10}))
    post_signed(client, inbound(type="video", text="", media={"id": "m" + "f" * 32, "mimetype": "video/mp4",
                                                              "size": 5000}))
    for media in MediaFile.objects.select_related("message"):
        assert settle(media, media.message) is None
    failures = dict(MediaFile.objects.values_list("content_type", "failure"))
    assert failures == {"application/x-msdownload": "wrong_type", "video/mp4": "too_large"}


@pytest.fixture
def sidecar_without_the_file(settings):
    """A sidecar that answers 404 for every file (another run fetched and deleted it)."""

    class Gone(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Gone)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.SIDECAR_URL = f"http://127.0.0.1:{server.server_port}"
    yield
    server.shutdown()


def test_a_second_run_that_finds_the_file_gone_does_not_undo_the_first_runs_stored_file(client, tenant,
                                                                                       sidecar_without_the_file):
    post_signed(client, inbound(type="image", text="", media={"id": MEDIA_ID, "mimetype": "image/jpeg", "size": 3}))
    stale = MediaFile.objects.get()
    # Meanwhile the first run stored the file (and deleted the sidecar's copy).
    MediaFile.objects.filter(pk=stale.pk).update(file="media/1/2026/11/first.jpg", size=3, content_type="image/jpeg")

    assert settle(stale, stale.message) is None

    row = MediaFile.objects.get()
    assert (row.file.name, row.failure) == ("media/1/2026/11/first.jpg", "")
    assert row.state != "failed"
