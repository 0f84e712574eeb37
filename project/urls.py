from django.contrib import admin
from django.urls import path

from whatsapp import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("webhooks/twilio/<str:tenant>/", views.TwilioInbound.as_view(), name="twilio-inbound"),
    path("webhooks/twilio/<str:tenant>/status/", views.TwilioStatus.as_view(), name="twilio-status"),
    path("webhooks/baileys/<str:tenant>/", views.BaileysInbound.as_view(), name="baileys-inbound"),
    path("webhooks/baileys/<str:tenant>/status/", views.BaileysStatus.as_view(), name="baileys-status"),
]
