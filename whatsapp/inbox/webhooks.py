"""POST /webhooks/baileys/<tenant>/owner/: the sidecar forwards a message the owner sent
from the phone (fromMe, not sent by this system). Signed and shaped like the inbound
webhook, where `from`/`fromJid` name the chat, i.e. the customer written to."""

from __future__ import annotations

from django.http import JsonResponse

from whatsapp.inbound.views import SidecarWebhook, sidecar_inbound
from whatsapp.inbox.owner import owner_wrote


class BaileysOwnerMessage(SidecarWebhook):
    def handle(self, request, tenant):
        recorded = owner_wrote(sidecar_inbound(tenant, self.payload(request)))
        return JsonResponse({"ok": True, "paused": recorded})
