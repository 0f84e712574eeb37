"""The inbox pages in the admin: tenants, a tenant's conversations, one conversation
(its thread polled as JSON), and the staff actions on it (take over, hand back, reply).
Staff need the whatsapp.use_inbox permission."""

from __future__ import annotations

from functools import wraps

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_POST

from whatsapp.inbound.views import PHONE
from whatsapp.inbox import state
from whatsapp.inbox.listing import FILTERS, conversations
from whatsapp.inbox.models import PauseReason
from whatsapp.inbox.replies import ReplyRefused, send_staff_reply
from whatsapp.inbox.thread import thread
from whatsapp.media.models import MediaFile
from whatsapp.media.serve import file_response
from whatsapp.models import Contact, Tenant
from whatsapp.text import normalize_phone

PERMISSION = "whatsapp.use_inbox"


def inbox_view(func):
    """Admin login, then the inbox permission."""

    @wraps(func)
    def checked(request, *args, **kwargs):
        if not request.user.has_perm(PERMISSION):
            raise PermissionDenied("You need the permission to use the inbox.")
        return func(request, *args, **kwargs)

    return admin.site.admin_view(checked)


def _context(request, title: str, **extra) -> dict:
    return {**admin.site.each_context(request), "title": title, **extra}


@inbox_view
def tenants(request):
    rows = list(Tenant.objects.order_by("name"))
    if len(rows) == 1:
        return redirect("inbox-list", rows[0].slug)
    return TemplateResponse(request, "admin/whatsapp/inbox/tenants.html", _context(request, "Inbox", tenants=rows))


@inbox_view
def conversation_list(request, slug: str):
    tenant = get_object_or_404(Tenant, slug=slug)
    show, search = request.GET.get("show", ""), request.GET.get("q", "")
    context = _context(
        request, f"Inbox: {tenant.name}", tenant=tenant, rows=conversations(tenant, show, search)[:200],
        filters=[(key, label) for key, (label, _) in FILTERS.items()], show=show, q=search,
    )
    return TemplateResponse(request, "admin/whatsapp/inbox/list.html", context)


def _contact(slug: str, contact_id: int) -> Contact:
    return get_object_or_404(Contact.objects.select_related("tenant"), tenant__slug=slug, pk=contact_id)


@inbox_view
def conversation(request, slug: str, contact_id: int):
    contact = _contact(slug, contact_id)
    state.conversation_of(contact)
    state.mark_read(contact)
    context = _context(request, f"{contact.name or 'Customer'} …{contact_tail(contact)}", tenant=contact.tenant,
                       contact=contact, staff_media_types=",".join(settings.STAFF_MEDIA_TYPES))
    return TemplateResponse(request, "admin/whatsapp/inbox/conversation.html", context)


@inbox_view
def conversation_json(request, slug: str, contact_id: int):
    contact = _contact(slug, contact_id)
    state.mark_read(contact)  # the page is open: what it shows is read
    return JsonResponse(thread(contact))


@require_POST
@inbox_view
def take_over(request, slug: str, contact_id: int):
    contact = _contact(slug, contact_id)
    state.pause(contact, PauseReason.STAFF, by=request.user)
    return redirect("inbox-conversation", slug, contact.pk)


@require_POST
@inbox_view
def hand_back(request, slug: str, contact_id: int):
    contact = _contact(slug, contact_id)
    state.resume(contact, by=request.user)
    return redirect("inbox-conversation", slug, contact.pk)


@require_POST
@inbox_view
def reply(request, slug: str, contact_id: int):
    contact = _contact(slug, contact_id)
    try:
        send_staff_reply(contact, request.user, request.POST.get("body", ""), request.FILES.get("file"))
    except ReplyRefused as exc:
        if request.headers.get("Accept") == "application/json":
            return JsonResponse({"ok": False, "error": str(exc)}, status=409)
        messages.error(request, str(exc))
    if request.headers.get("Accept") == "application/json":
        return JsonResponse({"ok": True})
    return redirect("inbox-conversation", slug, contact.pk)


@inbox_view
def media_file(request, slug: str, contact_id: int, media_id: int):
    """A file of this conversation (the customer's or staff's), for inbox users, who may
    not have the admin's message permissions."""
    contact = _contact(slug, contact_id)
    return file_response(get_object_or_404(MediaFile, pk=media_id, message__contact=contact))


@require_POST
@inbox_view
def pause_number(request, slug: str):
    """Pause the bot for a number that may not have written yet (its first message then
    waits for staff)."""
    tenant = get_object_or_404(Tenant, slug=slug)
    phone = normalize_phone(request.POST.get("phone", ""))
    if not PHONE.fullmatch(phone):
        messages.error(request, "Write the number with its country code, e.g. +15551234567.")
        return redirect("inbox-list", slug)
    contact, _ = Contact.objects.get_or_create(tenant=tenant, phone=phone)
    state.pause(contact, PauseReason.STAFF, by=request.user, note="set before they wrote")
    return redirect("inbox-conversation", slug, contact.pk)


def contact_tail(contact: Contact) -> str:
    """The end of the number only: enough for staff to tell customers apart."""
    return (contact.phone or contact.lid_jid.split("@")[0])[-4:]
