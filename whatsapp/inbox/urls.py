"""The inbox's pages, under /admin/inbox/ (included by project/urls.py before the admin's
catch-all)."""

from __future__ import annotations

from django.urls import path

from whatsapp.inbox import views
from whatsapp.inbox.webhooks import BaileysOwnerMessage

urlpatterns = [
    path("admin/inbox/", views.tenants, name="inbox"),
    path("admin/inbox/<str:slug>/", views.conversation_list, name="inbox-list"),
    path("admin/inbox/<str:slug>/pause-number/", views.pause_number, name="inbox-pause-number"),
    path("admin/inbox/<str:slug>/<int:contact_id>/", views.conversation, name="inbox-conversation"),
    path("admin/inbox/<str:slug>/<int:contact_id>/thread.json", views.conversation_json, name="inbox-thread"),
    path("admin/inbox/<str:slug>/<int:contact_id>/take-over/", views.take_over, name="inbox-take-over"),
    path("admin/inbox/<str:slug>/<int:contact_id>/hand-back/", views.hand_back, name="inbox-hand-back"),
    path("admin/inbox/<str:slug>/<int:contact_id>/reply/", views.reply, name="inbox-reply"),
    path("admin/inbox/<str:slug>/<int:contact_id>/media/<int:media_id>/", views.media_file, name="inbox-media"),
    path("admin/inbox/<str:slug>/<int:contact_id>/dead-letters/<int:dead_letter_id>/", views.dead_letter_action,
         name="inbox-dead-letter"),
    path("webhooks/baileys/<str:tenant>/owner/", BaileysOwnerMessage.as_view(), name="baileys-owner"),
]
