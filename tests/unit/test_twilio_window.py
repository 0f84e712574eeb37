"""Twilio's 24-hour window is the Twilio provider's rule: inside it free text goes out;
outside it the message's chosen template or the tenant's default, or nothing to send
(and the Baileys session has no such window)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from whatsapp.models import Contact, Message
from whatsapp.outbound.providers.baileys import BaileysProvider
from whatsapp.outbound.providers.base import PERMANENT, TRANSIENT, ProviderError
from whatsapp.outbound.providers.twilio import TwilioProvider

pytestmark = pytest.mark.django_db


def answer(tenant, hours_since_customer_wrote: float | None, template_sid: str = "") -> Message:
    last = None if hours_since_customer_wrote is None else timezone.now() - timedelta(hours=hours_since_customer_wrote)
    contact, _ = Contact.objects.update_or_create(tenant=tenant, phone="+15551234567",
                                                  defaults={"last_twilio_inbound_at": last})
    return Message.objects.new_outbound(tenant=tenant, contact=contact, body="Your cake is ready.",
                                        template_sid=template_sid)


def test_inside_the_window_free_text_goes_out(tenant):
    assert TwilioProvider().template_for(answer(tenant, 23.5)) is None


def test_outside_the_window_the_tenants_template_goes_out_or_nothing_can(tenant):
    assert TwilioProvider().template_for(answer(tenant, 25)) == ""
    assert TwilioProvider().template_for(answer(tenant, None)) == ""
    tenant.twilio_template_sid = "HXdefault"
    tenant.save()
    assert TwilioProvider().template_for(answer(tenant, 25)) == "HXdefault"


def test_a_template_staff_chose_wins_over_the_tenants_default(tenant):
    tenant.twilio_template_sid = "HXdefault"
    tenant.save()
    assert TwilioProvider().template_for(answer(tenant, 30, template_sid="HXchosen")) == "HXchosen"


def test_only_twilios_63016_asks_for_a_template():
    twilio = TwilioProvider()
    assert twilio.wants_template(ProviderError("window closed", PERMANENT, "63016"))
    assert not twilio.wants_template(ProviderError("opted out", PERMANENT, "21610"))
    assert not twilio.wants_template(ProviderError("rate limited", TRANSIENT, "20429"))


def test_the_session_has_no_window(tenant):
    assert BaileysProvider().template_for(answer(tenant, None)) is None
    assert not BaileysProvider().wants_template(ProviderError("window closed", PERMANENT, "63016"))
