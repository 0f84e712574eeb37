"""Tenants, contacts, messages and what happened to them. The database is the source of
truth; Redis only transports task ids."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone

from project.encryption import EncryptedTextField
from whatsapp.sessions.models import Shard  # noqa: F401 - the app's models module must name it
from whatsapp.sessions.policy import STOP_REASONS

E164 = RegexValidator(r"^\+[1-9]\d{6,14}$", "Use E.164 format: + and country code, e.g. +15551234567")
SLUG = RegexValidator(r"^[a-z0-9][a-z0-9_-]{0,62}$", "Lowercase letters, digits, - and _")


class Provider(models.TextChoices):
    BAILEYS = "baileys", "Baileys (WhatsApp Web)"
    TWILIO = "twilio", "Twilio"


class Tenant(models.Model):
    """A business whose customers write to its WhatsApp number."""

    slug = models.CharField(max_length=63, unique=True, validators=[SLUG])
    name = models.CharField(max_length=200)
    twilio_number = models.CharField(
        max_length=20, blank=True, validators=[E164], help_text="The Twilio WhatsApp sender, E.164."
    )
    baileys_enabled = models.BooleanField(
        default=False, help_text="Send through the tenant's own WhatsApp Web session first."
    )
    twilio_enabled = models.BooleanField(default=True, help_text="Send through Twilio (after Baileys, if both).")
    # Outside the 24-hour window Twilio only accepts an approved template.
    twilio_template_sid = models.CharField(
        max_length=64,
        blank=True,
        help_text="ContentSid of the approved template sent when the 24-hour window is closed.",
    )
    twilio_template_variables = models.JSONField(
        default=dict, blank=True, help_text='Template variables, e.g. {"1": "Acme"}.'
    )
    baileys_sends_per_minute = models.PositiveIntegerField(
        default=20, help_text="Pacing of sends through the WhatsApp Web session (never drops, only delays)."
    )
    # Which owner runs the WhatsApp Web session (docs/SCALING.md). Empty: SESSION_DEFAULT_SHARD.
    # Changing it is a move (whatsapp.sessions.shards.move_tenant), never a plain edit.
    shard = models.ForeignKey(
        "whatsapp.Shard", to_field="name", null=True, blank=True, on_delete=models.PROTECT, related_name="tenants",
        help_text="Empty: the default shard. Changing it moves the session (stopped, then started on the new owner).",
    )

    # Bot settings. Empty means "use the server default".
    bot_engine = models.CharField(
        max_length=10, blank=True, choices=[("rules", "Rules"), ("llm", "LLM")], help_text="Empty: BOT_ENGINE."
    )
    greeting = models.TextField(blank=True, default="Hello! How can we help you today?")
    fallback_reply = models.TextField(
        blank=True, default="Thanks for your message! A member of our team will get back to you soon."
    )
    non_text_reply = models.TextField(
        blank=True,
        default="Thanks! We can only read text messages here; could you write your question in words?",
    )
    system_prompt = models.TextField(blank=True)
    business_facts = models.TextField(blank=True, help_text="Opening hours, address, services...")
    llm_base_url = models.CharField(
        max_length=300, blank=True,
        help_text="e.g. https://llm.example.com/v1. Internal hosts only if listed in LLM_ALLOWED_INTERNAL_HOSTS.",
    )
    llm_model = models.CharField(max_length=100, blank=True)
    llm_temperature = models.FloatField(null=True, blank=True)
    llm_max_tokens = models.PositiveIntegerField(null=True, blank=True)
    # Encrypted at rest (project.encryption); the admin never shows it back.
    llm_api_key = EncryptedTextField(
        blank=True, help_text="Write-only. Empty: LLM_API_KEY, which is sent only to LLM_BASE_URL."
    )
    debounce_seconds = models.FloatField(null=True, blank=True, help_text="Empty: BOT_DEBOUNCE_SECONDS.")
    # Media (docs/MEDIA.md). Off by default: both send the customer's media to a third party.
    transcribe_voice_notes = models.BooleanField(
        default=False, help_text="Transcribe voice notes (TRANSCRIPTION_BASE_URL) so the bot can answer them.",
    )
    llm_accepts_images = models.BooleanField(
        default=False, help_text="The LLM model sees images: photos are sent to it as image content.",
    )
    # Through the WhatsApp Web session only (docs/MEDIA.md, "Presence").
    session_presence = models.BooleanField(
        default=False, help_text="WhatsApp Web session: mark the customer's messages read and show "
                                 "'typing...' before each reply, for a time that grows with its length.",
    )
    retention_days = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)],
        help_text="Messages older than this many days are deleted. Empty: RETENTION_DAYS.",
    )

    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    def provider_order(self) -> list[str]:
        """Providers to try, in order: the tenant's own session first, Twilio as fallback."""
        order = []
        if self.baileys_enabled:
            order.append(Provider.BAILEYS)
        if self.twilio_enabled:
            order.append(Provider.TWILIO)
        return order


class Contact(models.Model):
    """A customer of a tenant, known by phone number (and WhatsApp ids). WhatsApp may show
    a customer only by a LID (an opaque id, `<digits>@lid`): such a contact has no phone,
    only lid_jid, until a later message tells the number."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="contacts")
    phone = models.CharField(max_length=20, blank=True, validators=[E164], help_text="E.164; empty if known only by LID.")
    wa_jid = models.CharField(max_length=100, blank=True)
    lid_jid = models.CharField(max_length=100, blank=True)
    name = models.CharField(max_length=200, blank=True)
    # The customer's last message to the tenant's Twilio number opens Twilio's 24-hour window.
    last_twilio_inbound_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "phone"], condition=~models.Q(phone=""), name="contact_unique_phone"
            ),
            models.UniqueConstraint(
                fields=["tenant", "lid_jid"], condition=~models.Q(lid_jid=""), name="contact_unique_lid"
            ),
            models.CheckConstraint(
                condition=~models.Q(phone="", lid_jid=""), name="contact_has_phone_or_lid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name or 'contact'} …{(self.phone or self.lid_jid.split('@')[0])[-4:]}"


class Direction(models.TextChoices):
    INBOUND = "in", "Inbound"
    OUTBOUND = "out", "Outbound"


class Status(models.TextChoices):
    # inbound
    RECEIVED = "received", "Received"
    ANSWERED = "answered", "Answered"
    # The bot is paused for the contact (whatsapp.inbox) or they opted out: staff answer.
    WAITING = "waiting", "Waiting for staff"
    # outbound
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent (accepted by provider)"
    DELIVERED = "delivered", "Delivered"
    READ = "read", "Read"
    FAILED = "failed", "Failed after sending"
    UNDELIVERED = "undelivered", "Undelivered"
    DEAD = "dead", "Dead letter"
    DISCARDED = "discarded", "Discarded"


# Explicit allowed transitions. Anything else is refused (see Message.can_move_to).
TRANSITIONS: dict[str, set[str]] = {
    # Discarded: staff dropped an inbound dead letter (nobody answers it).
    Status.RECEIVED: {Status.ANSWERED, Status.DISCARDED, Status.WAITING},
    # Answered by a staff reply, or handed back to the bot when it resumes.
    Status.WAITING: {Status.ANSWERED, Status.RECEIVED, Status.DISCARDED},
    Status.ANSWERED: set(),
    Status.QUEUED: {Status.SENDING, Status.DEAD, Status.DISCARDED},
    # Back to queued: a retry or a lost worker; sent: a provider accepted every part.
    # Receipts do not move a message that is still sending (more parts may follow).
    Status.SENDING: {Status.QUEUED, Status.SENT, Status.DEAD},
    # A failure receipt after acceptance: queued again for the next provider, or a dead
    # letter with the provider's reason when none is left (whatsapp.inbound.receipts).
    Status.SENT: {Status.DELIVERED, Status.READ, Status.FAILED, Status.UNDELIVERED, Status.QUEUED, Status.DEAD},
    Status.DELIVERED: {Status.READ, Status.FAILED},
    Status.READ: set(),
    # A failure after the customer had it (delivered/read) is recorded; it is not re-sent.
    Status.FAILED: set(),
    Status.UNDELIVERED: set(),
    # A receipt for a dead letter whose outcome was unknown proves it reached the customer.
    Status.DEAD: {Status.QUEUED, Status.DISCARDED, Status.SENT, Status.DELIVERED, Status.READ},
    Status.DISCARDED: set(),
}


def new_cycle_fields() -> dict:
    """The start of a delivery cycle and its total deadline (SEND_DEADLINE_SECONDS): set
    when an answer is stored, and again when staff requeue it from dead letters."""
    now = timezone.now()
    return {"cycle_started_at": now, "deadline_at": now + timedelta(seconds=settings.SEND_DEADLINE_SECONDS)}


class MessageManager(models.Manager):
    def new_outbound(self, **fields) -> Message:
        """Store an answer queued for delivery, its delivery cycle starting now."""
        return self.create(direction=Direction.OUTBOUND, status=Status.QUEUED, **new_cycle_fields(), **fields)


class Message(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="messages")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="messages")
    direction = models.CharField(max_length=3, choices=Direction.choices)
    provider = models.CharField(max_length=10, choices=Provider.choices, blank=True)
    # NULL, not "", until a provider gives an id: the unique constraint ignores NULLs.
    provider_message_id = models.CharField(max_length=100, null=True, blank=True)  # noqa: DJ001
    body = models.TextField(blank=True)
    media_type = models.CharField(max_length=20, default="text")
    status = models.CharField(max_length=12, choices=Status.choices, db_index=True)
    idempotency_key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    correlation_id = models.UUIDField(default=uuid.uuid4, editable=False, db_index=True)
    in_reply_to = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replies"
    )

    # Reply generation (outbound).
    engine = models.CharField(max_length=20, blank=True)
    engine_latency_ms = models.PositiveIntegerField(null=True, blank=True)
    # A staff reply from the inbox (whatsapp.inbox): who wrote it. Empty for the bot's.
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Delivery bookkeeping (outbound).
    attempt_count = models.PositiveIntegerField(default=0)
    parts_sent = models.PositiveIntegerField(default=0, help_text="Parts of a split answer already accepted.")
    # Every requeue from dead letters starts a new generation: the parts' idempotency keys
    # change, so an earlier cycle's unknown outcome no longer blocks (staff decided).
    key_generation = models.PositiveIntegerField(default=0)
    # After an edit-and-requeue of a partly sent answer: the text of the parts the customer
    # already had (a prefix of body) and how many parts it was. Only the rest is sent.
    sent_before_edit = models.TextField(blank=True)
    parts_before_edit = models.PositiveIntegerField(default=0)
    lease_until = models.DateTimeField(null=True, blank=True, help_text="A claim on the message expires then.")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    deadline_at = models.DateTimeField(null=True, blank=True)
    # Start of the current delivery cycle (creation, or the last requeue from dead letters):
    # retries are counted from here.
    cycle_started_at = models.DateTimeField(null=True, blank=True)
    template_sid = models.CharField(max_length=64, blank=True, help_text="Set when sent as a Twilio template.")
    # When the reconciler last re-enqueued this message: once per grace period at most, so a
    # backlog is not multiplied by duplicate tasks.
    redriven_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    error_code = models.CharField(max_length=20, blank=True)

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)

    objects = MessageManager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # A re-delivered webhook finds its message already stored.
            models.UniqueConstraint(
                fields=["provider", "provider_message_id"],
                condition=models.Q(provider_message_id__isnull=False),
                name="message_unique_provider_id",
            ),
            # One answer per inbound message, however often the AI task runs.
            models.UniqueConstraint(
                fields=["in_reply_to"],
                condition=models.Q(direction="out", in_reply_to__isnull=False),
                name="message_one_reply",
            ),
        ]
        indexes = [models.Index(fields=["tenant", "contact", "created_at"])]

    def __str__(self) -> str:
        return f"{self.get_direction_display()} #{self.pk} {self.status}"

    def can_move_to(self, new_status: str) -> bool:
        return new_status in TRANSITIONS.get(self.status, set())

    def move_to(self, new_status: str, **fields) -> bool:
        """Change status if the transition is allowed and the row still has the status we
        read (a conditional UPDATE, so concurrent writers cannot both win)."""
        if not self.can_move_to(new_status):
            return False
        updated = Message.objects.filter(pk=self.pk, status=self.status).update(
            status=new_status, updated_at=timezone.now(), **fields
        )
        if updated:
            self.status = new_status
            for key, value in fields.items():
                setattr(self, key, value)
        return bool(updated)


class Outcome(models.TextChoices):
    # Written before the provider call: a "started" attempt found later means the worker
    # died mid-call, and the outcome must be resolved before anything is sent again.
    STARTED = "started", "Started (no outcome recorded)"
    ACCEPTED = "accepted", "Accepted by provider"
    TRANSIENT = "transient", "Transient failure"
    PERMANENT = "permanent", "Permanent failure"
    AMBIGUOUS = "ambiguous", "Outcome unknown"
    SKIPPED = "skipped", "Skipped (breaker open or session not ready)"
    # The provider accepted it, then reported it failed/undelivered (a receipt).
    FAILED = "failed", "Failed after acceptance"


class DeliveryAttempt(models.Model):
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attempts")
    provider = models.CharField(max_length=10, choices=Provider.choices)
    started_at = models.DateTimeField(default=timezone.now)
    duration_ms = models.PositiveIntegerField(default=0)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    part = models.PositiveIntegerField(default=0)
    template_sid = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    error_code = models.CharField(max_length=20, blank=True)
    # Indexed: every receipt for a later part, or for an unknown outcome, is found by it.
    provider_message_id = models.CharField(max_length=100, blank=True, db_index=True)
    # The message's key generation when this attempt was made (see Message.key_generation).
    key_generation = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["started_at"]

    def __str__(self) -> str:
        return f"{self.provider} {self.outcome} ({self.duration_ms} ms)"


class DeadLetter(models.Model):
    """What staff must look at: an outbound reply that could not be delivered (requeue or
    discard), an inbound message nobody answered in time (answer now or discard), or an
    inbound message the webhook refused and the sidecar kept (store and answer, or discard).
    """

    class Kind(models.TextChoices):
        OUTBOUND = "outbound", "Reply not delivered"
        UNANSWERED = "unanswered", "Message not answered"
        REFUSED = "refused", "Message refused by the webhook"

    class Reason(models.TextChoices):
        EXHAUSTED = "exhausted", "Retries exhausted"
        DEADLINE = "deadline", "Deadline passed"
        PERMANENT = "permanent", "Permanent provider error"
        AMBIGUOUS = "ambiguous", "Outcome unknown (may have been sent)"
        NO_TEMPLATE = "no_template", "24-hour window closed and no template configured"
        NO_PROVIDER = "no_provider", "No provider available"
        UNDELIVERED = "undelivered", "Provider reported it undelivered after accepting it"
        # inbound
        NOT_ANSWERED = "not_answered", "Not answered within the deadline"
        TOO_LARGE = "too_large", "Refused: message too large"
        BAD_SIGNATURE = "bad_signature", "Refused: signature not accepted"
        UNKNOWN_TENANT = "unknown_tenant", "Refused: no tenant with that name"
        REFUSED = "refused", "Refused by the webhook"

    class Resolution(models.TextChoices):
        REQUEUED = "requeued", "Requeued"
        DISCARDED = "discarded", "Discarded"
        # A provider's receipt proved the customer got it after all (an unknown outcome).
        CONFIRMED = "confirmed", "Delivered after all (provider receipt)"
        ANSWERED = "answered", "Answered now"
        STORED = "stored", "Stored and answered"

    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.OUTBOUND, db_index=True)
    # The undelivered reply, or the unanswered inbound message; empty for a refused one
    # (it was never stored: payload holds what the sidecar kept).
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.CASCADE, related_name="dead_letters")
    reason = models.CharField(max_length=20, choices=Reason.choices)
    last_error = models.TextField(blank=True)
    attempt_count = models.PositiveIntegerField(default=0)
    last_provider = models.CharField(max_length=10, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    resolution = models.CharField(max_length=10, choices=Resolution.choices, blank=True)
    note = models.TextField(blank=True)
    # The dead letter whose requeue led to this one (a chain staff can follow).
    requeued_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="requeued_as"
    )
    # Edit-and-requeue: the text before and after the edit (who: resolved_by).
    original_body = models.TextField(blank=True)
    edited_body = models.TextField(blank=True)
    # Refused inbound messages: the tenant slug the sidecar posted to, the webhook body it
    # kept, and the sidecar's id of the kept item (unique: collecting twice files it once).
    tenant_slug = models.CharField(max_length=63, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    source_id = models.CharField(max_length=200, null=True, blank=True, unique=True)  # noqa: DJ001

    class Meta:
        ordering = ["-created_at"]
        permissions = [("resolve_deadletter", "Can requeue or discard dead letters")]
        constraints = [
            # At most one open dead letter per message.
            models.UniqueConstraint(
                fields=["message"], condition=models.Q(resolved_at__isnull=True), name="deadletter_one_open"
            ),
        ]

    def __str__(self) -> str:
        return f"Dead letter #{self.pk} ({self.reason})"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


class SessionState(models.Model):
    """What the lifecycle worker last saw of a tenant's WhatsApp Web session."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="session_state")
    desired = models.CharField(max_length=10, default="stopped", help_text="running or stopped")
    status = models.CharField(max_length=20, default="stopped")
    connected = models.BooleanField(default=False)
    can_send = models.BooleanField(default=False)
    auth_paired = models.BooleanField(default=False)
    qr = models.TextField(blank=True)
    last_disconnect_code = models.IntegerField(null=True, blank=True)
    last_disconnect_reason = models.CharField(max_length=50, blank=True)
    last_disconnect_at = models.DateTimeField(null=True, blank=True)
    reconnect_attempts = models.PositiveIntegerField(default=0)
    next_reconnect_at = models.DateTimeField(null=True, blank=True)
    connected_since = models.DateTimeField(null=True, blank=True)
    alert = models.CharField(max_length=200, blank=True)
    # Set when the reconnect policy stopped the session for good (a code that will not
    # heal, or too many reconnects); staff pressing Start clears it.
    stop_reason = models.CharField(
        max_length=30, blank=True, choices=sorted(STOP_REASONS.items()),
        help_text="Why the session was stopped automatically (empty: it was not).",
    )
    stopped_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        # Seeing the QR code is pairing a phone to the tenant's number: more than viewing.
        permissions = [("manage_session", "Can pair (see the QR code), start, stop, restart and log out sessions")]

    def __str__(self) -> str:
        return f"{self.tenant.slug}: {self.status}"


class ErasureLog(models.Model):
    """That a customer was erased, by whom and when, and how much: what stays for
    accounting. It never names the customer (no number, JID or name)."""

    tenant = models.ForeignKey(Tenant, null=True, on_delete=models.SET_NULL, related_name="+")
    tenant_slug = models.CharField(max_length=63)
    requested_by = models.CharField(max_length=150, help_text="Admin user name, or the command and OS user.")
    via = models.CharField(max_length=10, choices=[("admin", "Admin"), ("command", "manage.py erase_contact")])
    erased_at = models.DateTimeField(default=timezone.now, db_index=True)
    # {"messages_in": n, "messages_out": n, "attempts": n, "dead_letters": n,
    #  "admin_log_entries_masked": n, "sidecar_idempotency_records": n, "sidecar_spool_items": n}
    counts = models.JSONField(default=dict)

    class Meta:
        ordering = ["-erased_at"]
        permissions = [("erase_contact", "Can erase a contact and everything kept about them")]

    def __str__(self) -> str:
        return f"Erasure #{self.pk} ({self.tenant_slug})"


# In its own module (whatsapp.media); imported here so that Django registers it.
# The inbox's models live in their own module; importing them here registers them.
# So does the sidecar's own state with SIDECAR_STATE_STORE=postgres (whatsapp.sessions.sidecar_state).
from whatsapp.inbox.models import Conversation, ConversationEvent, InboxSettings  # noqa: E402, F401
from whatsapp.media.models import MediaFile  # noqa: E402,F401
from whatsapp.sessions.sidecar_state import SidecarState  # noqa: E402,F401
