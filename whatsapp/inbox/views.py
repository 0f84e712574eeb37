"""The inbox pages in the admin: tenants, a tenant's conversations, one conversation
(its thread polled as JSON), and the staff actions on it (take over, hand back, reply).
Staff need the whatsapp.use_inbox permission."""

from __future__ import annotations

from functools import wraps

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_POST

from whatsapp.inbound.views import PHONE
from whatsapp.inbox import dead_letters, state
from whatsapp.inbox.listing import FILTERS, conversations
from whatsapp.inbox.models import PauseReason
from whatsapp.inbox.replies import ReplyRefused, send_staff_reply
from whatsapp.inbox.thread import thread
from whatsapp.media.models import MediaFile
from whatsapp.media.serve import file_response
from whatsapp.models import Contact, DeadLetter, Tenant
from whatsapp.text import normalize_phone

PERMISSION = "whatsapp.use_inbox"
CONVERSATIONS_PER_PAGE = 50
THREAD_PAGE = 50  # messages of a thread per "load older"
THREAD_MAX_PAGES = 40


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
    page = Paginator(conversations(tenant, show, search), CONVERSATIONS_PER_PAGE).get_page(request.GET.get("page"))
    context = _context(
        request, f"Inbox: {tenant.name}", tenant=tenant, rows=page.object_list, page=page,
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
    # "Load older" asks for one more page; every poll then brings all the pages shown.
    pages = int(request.GET["pages"]) if request.GET.get("pages", "").isdigit() else 1
    limit = THREAD_PAGE * min(max(pages, 1), THREAD_MAX_PAGES)
    return JsonResponse(thread(contact, limit=limit, can_resolve=request.user.has_perm(dead_letters.PERMISSION)))


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
        send_staff_reply(contact, request.user, request.POST.get("body", ""), request.POST.get("template"),
                         upload=request.FILES.get("file"))
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
def dead_letter_action(request, slug: str, contact_id: int, dead_letter_id: int):
    """A dead letter's button in the thread: requeue, answer now or discard (confirmed)."""
    contact = _contact(slug, contact_id)
    letter = get_object_or_404(DeadLetter, pk=dead_letter_id, message__contact=contact)
    wants_json = request.headers.get("Accept") == "application/json"
    action = request.POST.get("action", "")
    if not request.user.has_perm(dead_letters.PERMISSION):
        error, status = "You do not have permission to resolve dead letters.", 403
    elif action == "discard" and request.POST.get("confirm_discard") != "yes":
        error, status = "Confirm the discard: the customer gets no answer.", 400
    elif not dead_letters.act(letter, action, request.user):
        error, status = "Already resolved, or not possible for this dead letter; nothing done.", 409
    else:
        error, status = "", 200
    if wants_json:
        return JsonResponse({"ok": not error, "error": error}, status=status)
    if error:
        messages.error(request, error)
    return redirect("inbox-conversation", slug, contact.pk)


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
