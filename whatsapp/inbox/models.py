"""What staff and customers decided about a conversation, kept in the database so that it
holds across messages and restarts: is the bot paused for this contact (why, by whom,
since when), does the conversation need a person, has the customer opted out. Plus the
per-tenant settings of those rules and a log of the events shown in the thread."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from whatsapp.inbox.hours import validate_hours, validate_time_zone


class PauseReason(models.TextChoices):
    STAFF = "staff", "Staff took over"
    OWNER_PHONE = "owner_phone", "The owner answered from the phone"
    HANDOFF = "handoff", "The customer asked for a person"


class Conversation(models.Model):
    """One row per contact, created on first need (a pause can precede any message)."""

    contact = models.OneToOneField("whatsapp.Contact", on_delete=models.CASCADE, related_name="conversation")
    bot_paused = models.BooleanField(default=False, db_index=True)
    paused_why = models.CharField(max_length=12, choices=PauseReason.choices, blank=True)
    paused_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    paused_at = models.DateTimeField(null=True, blank=True)
    needs_human = models.BooleanField(default=False, db_index=True)
    opted_out = models.BooleanField(default=False, db_index=True)
    opted_out_at = models.DateTimeField(null=True, blank=True)
    # Idle resume counts from the later of paused_at and this.
    last_staff_reply_at = models.DateTimeField(null=True, blank=True)
    # Unread counts: the thread's messages after this.
    staff_read_at = models.DateTimeField(null=True, blank=True)
    # Outside opening hours the away message goes once; cleared when someone answers.
    away_sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        permissions = [("use_inbox", "Can read conversations, take over from the bot and reply as staff")]

    def __str__(self) -> str:
        return f"conversation of {self.contact}"

    @classmethod
    def of(cls, contact) -> Conversation | None:
        """The contact's conversation, None before it has one. Taken from the contact when
        the read that loaded it loaded this too (the reply task's, issue 16), else read now."""
        if type(contact).conversation.is_cached(contact):
            return getattr(contact, "conversation", None)  # None: loaded, and there is none
        return cls.objects.filter(contact=contact).first()

    @property
    def idle_since(self):
        times = [t for t in (self.paused_at, self.last_staff_reply_at) if t]
        return max(times) if times else None


class ConversationEvent(models.Model):
    """A system event shown in the thread (bot paused/resumed, handed off, opted out...)."""

    class Kind(models.TextChoices):
        PAUSED = "paused", "Bot paused"
        RESUMED = "resumed", "Bot resumed"
        HANDOFF = "handoff", "Customer asked for a person"
        OWNER_REPLIED = "owner_replied", "Owner answered from the phone"
        OPTED_OUT = "opted_out", "Customer opted out"
        OPTED_IN = "opted_in", "Customer opted back in"

    contact = models.ForeignKey("whatsapp.Contact", on_delete=models.CASCADE, related_name="conversation_events")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                           related_name="+")
    note = models.CharField(max_length=300, blank=True)
    at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} at {self.at:%Y-%m-%d %H:%M}"


class InboxSettings(models.Model):
    """A tenant's handoff and opt-out rules. A tenant without a row uses the defaults."""

    tenant = models.OneToOneField("whatsapp.Tenant", on_delete=models.CASCADE, related_name="inbox_settings")
    handoff_keywords = models.CharField(
        max_length=300, blank=True, default="human, agent, person",
        help_text="Words (comma separated) with which a customer asks for a person. Empty: none.",
    )
    handoff_reply = models.TextField(
        default="Of course, a person from our team will answer you here as soon as possible."
    )
    llm_hands_off = models.BooleanField(
        "AI may hand off", default=True,
        help_text="The LLM engine may decide to hand the conversation to a person (it is offered a "
                  "function to call; a model server that does not support tools needs this off).",
    )
    resume_after_minutes = models.PositiveIntegerField(
        default=120, help_text="The bot answers again after this long without a staff reply. 0: only by hand."
    )
    stop_keywords = models.CharField(max_length=300, default="stop, unsubscribe")
    start_keywords = models.CharField(max_length=300, default="start")
    opt_out_reply = models.TextField(
        default="You will not receive any more messages from us. Write START to hear from us again."
    )
    opt_in_reply = models.TextField(default="Welcome back! How can we help you?")
    # Opening hours (whatsapp.inbox.hours).
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])
    opening_hours = models.JSONField(
        default=dict, blank=True, validators=[validate_hours],
        help_text='e.g. {"mon": "08:00-18:00", "sat": "09:00-13:00"}; a day left out is closed; empty: always open.',
    )
    outside_hours = models.CharField(
        max_length=6, default="answer",
        choices=[("answer", "The bot answers as usual"), ("away", "Send the away message once; staff answer")],
    )
    away_message = models.TextField(
        default="Thanks for your message! We are closed now and will answer when we open again."
    )

    class Meta:
        verbose_name_plural = "inbox settings"

    def __str__(self) -> str:
        return f"inbox settings of {self.tenant}"

    @classmethod
    def of(cls, tenant) -> InboxSettings:
        """The tenant's settings, the defaults when it saved none. Taken from the tenant
        when the read that loaded it loaded these too (the reply task's), else read now."""
        if type(tenant).inbox_settings.is_cached(tenant):
            return getattr(tenant, "inbox_settings", None) or cls(tenant=tenant)
        found = cls.objects.filter(tenant=tenant).first()
        return found or cls(tenant=tenant)


class ReplyTemplate(models.Model):
    """One of a tenant's approved WhatsApp templates (Twilio Content API), offered to staff
    when Twilio's 24-hour window is closed. `text` is what the customer reads (shown in the
    thread, and sent as such through the WhatsApp Web session, which has no window)."""

    tenant = models.ForeignKey("whatsapp.Tenant", on_delete=models.CASCADE, related_name="reply_templates")
    name = models.CharField(max_length=100)
    content_sid = models.CharField("ContentSid", max_length=64, validators=[
        RegexValidator(r"^HX[0-9a-fA-F]{32}$", "A Twilio ContentSid: HX and 32 hex digits.")])
    variables = models.JSONField(default=dict, blank=True, help_text='Template variables, e.g. {"1": "Acme"}.')
    text = models.TextField(help_text="The message as the customer reads it, variables filled in.")

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="reply_template_name_per_tenant")]

    def __str__(self) -> str:
        return self.name
