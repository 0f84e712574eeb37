"""`manage.py pipeline_status`: the dashboard's numbers in a terminal."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from whatsapp.ops.summary import pipeline_summary, rate, seconds


class Command(BaseCommand):
    help = "Print whether customers are being answered: replies, latency, failovers, dead letters, breakers, sessions."

    def handle(self, *args, **options):
        s = pipeline_summary()
        out = self.stdout.write
        out(f"Pipeline status at {s['now']:%Y-%m-%d %H:%M:%S %Z}")
        for w in s["windows"]:
            out("")
            out(f"Last {w.name}: {w.inbound} customer messages, {w.replies_sent} replies sent, {w.replies_dead} dead "
                f"letters made ({w.dead_resolved} resolved)")
            merged = f" ({w.merged} by the one reply to their burst)" if w.merged else ""
            out(f"  answered: {w.answered} of {w.inbound} customer messages{merged}")
            out(f"  time to reply: median {seconds(w.median_reply_s)}, p95 {seconds(w.p95_reply_s)}")
            out(f"  failover rate: {rate(w.failover_rate)} ({w.failed_over} of {w.attempted})")
            for provider, statuses in w.by_provider.items():
                counts = ", ".join(f"{status} {n}" for status, n in sorted(statuses.items()))
                out(f"  {provider}: {counts}")
        out("")
        out(f"Waiting for an answer: {s['unanswered']} (oldest {seconds(s['oldest_unanswered_s'])})")
        reasons = ", ".join(f"{r} {n}" for r, n in s["dead_letters_by_reason"].items())
        out(f"Open dead letters: {s['dead_letters_open']}" + (f" ({reasons})" if reasons else ""))
        if s["breakers_error"]:
            out(self.style.WARNING(f"Breakers: {s['breakers_error']}"))
        else:
            opened = ", ".join(f"{b['name']} {b['state']}" for b in s["breakers_open"]) or "all closed"
            out(f"Breakers not closed: {len(s['breakers_open'])} ({opened})")
        out(f"Sessions: {len(s['sessions'])}")
        for row in s["sessions"]:
            flag = "can send" if row["can_send"] else "cannot send"
            extra = f", last disconnect {row['last_disconnect_code']}" if row["last_disconnect_code"] else ""
            out(f"  {row['tenant__slug']}: {row['status']} ({flag}{extra}){' ALERT: ' + row['alert'] if row['alert'] else ''}")
