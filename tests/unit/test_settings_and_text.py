"""Settings that refuse to run unsafely, and the small text helpers."""

from __future__ import annotations

import pytest

from tests.support.settings_env import PRODUCTION_SECRETS, load_settings
from whatsapp.text import normalize_phone, split_text


def test_production_starts_with_every_secret_set():
    result = load_settings(**PRODUCTION_SECRETS)
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


@pytest.mark.parametrize(
    ("override", "complaint"),
    [
        ({"DJANGO_DEBUG": "true"}, "DJANGO_DEBUG must be false"),
        ({"DJANGO_SECRET_KEY": ""}, "DJANGO_SECRET_KEY must be set"),
        ({"TWILIO_AUTH_TOKEN": ""}, "TWILIO_AUTH_TOKEN must be set"),
        ({"SIDECAR_TOKEN": ""}, "SIDECAR_TOKEN must be set"),
        ({"DJANGO_ALLOWED_HOSTS": ""}, "DJANGO_ALLOWED_HOSTS"),
        ({"SIDECAR_TRANSPORT": "sandbox"}, "SIDECAR_TRANSPORT must be baileys"),
    ],
)
def test_production_refuses_debug_and_missing_secrets(override, complaint):
    env = {**PRODUCTION_SECRETS, **override}
    env = {k: v for k, v in env.items() if v != ""}
    result = load_settings(**env)
    assert result.returncode != 0
    assert complaint in result.stderr


def test_a_mistyped_boolean_is_an_error_not_false():
    result = load_settings(DJANGO_DEBUG="flase")
    assert result.returncode != 0
    assert "not a boolean" in result.stderr


@pytest.mark.parametrize(
    ("raw", "phone"),
    [
        ("whatsapp:+15551234567", "+15551234567"),
        ("15551234567@s.whatsapp.net", "+15551234567"),
        ("15551234567:12@s.whatsapp.net", "+15551234567"),
        ("+1 (555) 123-4567", "+15551234567"),
        ("", ""),
    ],
)
def test_phone_numbers_are_normalized_to_e164(raw, phone):
    assert normalize_phone(raw) == phone


def test_split_text_keeps_short_text_whole():
    assert split_text("  hello there ", 1600) == ["hello there"]


def test_split_text_cuts_at_words_within_the_limit_and_loses_nothing():
    text = "alpha beta gamma delta epsilon zeta eta theta"
    parts = split_text(text, 12)
    assert all(len(p) <= 12 for p in parts)
    assert " ".join(parts) == text


def test_split_text_cuts_a_word_longer_than_the_limit():
    assert split_text("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]
