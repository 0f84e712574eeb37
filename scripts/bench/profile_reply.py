"""The SQL statements behind one reply, step by step: the webhook (Django's test client),
the bot's task (generate_reply) and the send task (send_message), each run in this
process with Django's query log on, against the fake Twilio API and a fresh stack.

    .venv/bin/python -m scripts.bench.profile_reply [--sql]

Which of them write, and which of those carry a guarantee, is discussed in
docs/PERFORMANCE.md (issue 16).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import uuid
from pathlib import Path

from scripts.bench.stack import Stack, signed_twilio_form

WRITES = ("INSERT", "UPDATE", "DELETE", "SAVEPOINT", "RELEASE", "BEGIN", "COMMIT", "WITH")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sql", action="store_true", help="print every statement")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-reply-") as tmp:
        stack = Stack(Path(tmp), BOT_DEBOUNCE_SECONDS=0)
        try:
            stack.setup()
            stack.start_fake_twilio()
            os.environ.update({**stack.env, "DJANGO_DEBUG": "true"})
            profile(stack, args.sql)
        finally:
            stack.stop_all()


def profile(stack: Stack, show_sql: bool) -> None:
    import django

    django.setup()
    from django.db import connection, reset_queries
    from django.test import Client

    from bots.tasks import generate_reply
    from whatsapp.models import Direction, Message
    from whatsapp.tasks import send_message

    client = Client()

    def webhook(phone: str) -> None:
        form, signature = signed_twilio_form("http://testserver", "bench", "SM" + uuid.uuid4().hex, phone, "hello")
        response = client.post("/webhooks/twilio/bench/", data=form, content_type="application/x-www-form-urlencoded",
                               HTTP_X_TWILIO_SIGNATURE=signature)
        assert response.status_code == 200

    def report(label: str) -> None:
        queries = connection.queries
        kinds: dict[str, int] = {}
        for q in queries:
            word = q["sql"].split(None, 1)[0].upper()
            kinds[word] = kinds.get(word, 0) + 1
        print(f"-- {label}: {len(queries)} statements " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
        if show_sql:
            for q in queries:
                print(f"   {q['sql'][:160]}")

    # Warm (imports, connections, the provider client), then the measured reply.
    for phone in ("+15550000001", "+15550000002"):
        reset_queries()
        webhook(phone)
        report("webhook")
        inbound = Message.objects.filter(direction=Direction.INBOUND).order_by("-pk").first()
        reset_queries()
        generate_reply.apply(args=(inbound.pk,))
        report("generate_reply")
        reply = Message.objects.get(in_reply_to=inbound)
        reset_queries()
        send_message.apply(args=(reply.pk,))
        report("send_message")
        reply.refresh_from_db()
        print(f"   reply status: {reply.status}")


if __name__ == "__main__":
    main()
