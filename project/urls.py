from django.contrib import admin
from django.urls import include, path, reverse_lazy

from whatsapp.inbound import views
from whatsapp.media.signed import signed_file

# The admin's "View site" link: this project has no public site, the staff dashboard is
# the useful place to land.
admin.site.site_url = reverse_lazy("ops-dashboard")

urlpatterns = [
    # /healthz, /readyz, /metrics and the staff dashboard (before the admin catch-all).
    path("", include("whatsapp.ops.urls")),
    path("", include("whatsapp.inbox.urls")),
    path("admin/", admin.site.urls),
    path("webhooks/twilio/<str:tenant>/", views.TwilioInbound.as_view(), name="twilio-inbound"),
    path("webhooks/twilio/<str:tenant>/status/", views.TwilioStatus.as_view(), name="twilio-status"),
    path("webhooks/baileys/<str:tenant>/", views.BaileysInbound.as_view(), name="baileys-inbound"),
    path("webhooks/baileys/<str:tenant>/status/", views.BaileysStatus.as_view(), name="baileys-status"),
    # A staff file, for Twilio to fetch (signed and expiring: whatsapp.media.signed).
    path("media/out/<str:token>/", signed_file, name="media-signed"),
]
