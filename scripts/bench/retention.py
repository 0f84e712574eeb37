"""Retention benchmark: do the tables stay bounded under a constant message rate?

Simulates N days of traffic into a fresh PostgreSQL database (the code's real models and
the real retention code, only the clock is simulated): every day C conversations (an
inbound message, its reply, one delivery attempt; a share of the customers new, 1% of the
replies dead-lettered and resolved by staff two days later), then the retention run of
that day (`whatsapp.retention.purge` with the simulated "now" and the default batch size
and time budget). Prints the table sizes every few days and the longest run. A plain VACUUM after each
simulated day stands in for autovacuum (which has hours in a real day).

    .venv/bin/python -m scripts.bench.retention --days 120 --per-day 1000 --retention-days 30 [--record]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from scripts.bench.stack import Stack

TABLES = ["whatsapp_message", "whatsapp_deliveryattempt", "whatsapp_deadletter", "whatsapp_contact"]


def simulate(days: int, per_day: int, retention_days: int, every: int, new_share: float) -> dict:
    import django

    django.setup()
    from django.db import connection
    from django.db.models import F

    from whatsapp.models import Contact, DeadLetter, DeliveryAttempt, Direction, Message, Status, Tenant
    from whatsapp.retention import purge

    tenant = Tenant.objects.create(slug="bench", name="Bench", retention_days=retention_days)
    rng = random.Random(7)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    regulars = per_day * 2  # a steady customer base, plus new customers every day
    next_new = regulars
    rows, runs = [], []

    def contacts_for(day_start: datetime, numbers: list[int]) -> list[Contact]:
        phones = [f"+1555{n:07d}" for n in numbers]
        known = {c.phone: c for c in Contact.objects.filter(tenant=tenant, phone__in=set(phones))}
        missing = sorted(set(phones) - set(known))
        for contact in Contact.objects.bulk_create([Contact(tenant=tenant, phone=p) for p in missing]):
            known[contact.phone] = contact
        Contact.objects.filter(phone__in=missing, tenant=tenant).update(created_at=day_start)
        return [known[p] for p in phones]

    for day in range(days):
        day_start = start + timedelta(days=day)
        numbers = []
        for _ in range(per_day):
            if rng.random() < new_share:
                numbers.append(next_new)
                next_new += 1
            else:
                numbers.append(rng.randrange(regulars))
        customers = contacts_for(day_start, numbers)
        times = sorted(day_start + timedelta(seconds=rng.uniform(0, 86_000)) for _ in range(per_day))
        inbound = Message.objects.bulk_create([
            Message(tenant=tenant, contact=c, direction=Direction.INBOUND, status=Status.ANSWERED, body="hi",
                    created_at=t) for c, t in zip(customers, times, strict=True)
        ])
        dead = set(rng.sample(range(per_day), max(1, per_day // 100)))
        replies = Message.objects.bulk_create([
            Message(tenant=tenant, contact=m.contact, direction=Direction.OUTBOUND, in_reply_to=m, body="hello",
                    status=Status.DEAD if i in dead else Status.DELIVERED, created_at=m.created_at)
            for i, m in enumerate(inbound)
        ])
        DeliveryAttempt.objects.bulk_create([
            DeliveryAttempt(message=r, provider="twilio", outcome="accepted", started_at=r.created_at) for r in replies
        ])
        DeadLetter.objects.bulk_create([
            DeadLetter(message=replies[i], reason="exhausted", created_at=replies[i].created_at) for i in dead
        ])
        # bulk_create stamps updated_at with the real clock: give it the simulated one.
        Message.objects.filter(created_at__gte=day_start).update(updated_at=F("created_at"))
        # Staff resolve the dead letters of two days ago (discard).
        resolved_at = day_start + timedelta(hours=12)
        due = DeadLetter.objects.filter(resolved_at__isnull=True, created_at__lt=day_start - timedelta(days=1))
        Message.objects.filter(dead_letters__in=due).update(status=Status.DISCARDED, updated_at=resolved_at)
        due.update(resolved_at=resolved_at, resolution="discarded")

        started = time.perf_counter()
        result = purge(now=day_start + timedelta(days=1))
        runs.append((time.perf_counter() - started, result))
        # What autovacuum does in the hours of a real day: freed pages become reusable.
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM {', '.join(TABLES)}")
        if (day + 1) % every == 0 or day == days - 1:
            rows.append((day + 1, table_sizes(connection)))
            print(f"day {day + 1:4d}: " + ", ".join(f"{t} {v[0]} rows {(v[1] + v[2]) / 2**20:.1f} MiB" for t, v in rows[-1][1].items()), flush=True)
    return {"rows": rows, "runs": runs}


def table_sizes(connection) -> dict[str, tuple[int, int, int]]:
    """Per table: rows, bytes of the table itself, bytes of its indexes."""
    sizes = {}
    with connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(f'SELECT COUNT(*), pg_table_size(%s), pg_indexes_size(%s) FROM "{table}"', [table, table])
            sizes[table.removeprefix("whatsapp_")] = tuple(cursor.fetchone())
    return sizes


def report(result: dict, args, command: str) -> str:
    from scripts.bench.run import header

    names = list(result["rows"][0][1])
    lines = ["| day | " + " | ".join(f"{n}: rows, table + index MiB" for n in names) + " |",
             "|---|" + "---|" * len(names)]
    for day, sizes in result["rows"]:
        lines.append(f"| {day} | " + " | ".join(
            f"{n}, {t / 2**20:.1f} + {i / 2**20:.1f}" for n, t, i in sizes.values()) + " |")
    longest, longest_result = max(result["runs"], key=lambda run: run[0])
    deleted = sum(r["messages"] for _, r in result["runs"])
    return (
        header("Retention", command) + "\n"
        + f"{args.per_day} conversations a day (2 messages, 1 attempt each; {args.new_share:.0%} new customers; "
        f"1% dead-lettered, resolved two days later) for {args.days} simulated days, retention "
        f"{args.retention_days} days, the retention task run once a day (batches of 500, 30 s budget).\n\n"
        + "\n".join(lines) + "\n\n"
        + f"Messages deleted in all: {deleted}. Longest daily run: {longest:.2f} s "
        f"({longest_result['messages']} messages, complete: {longest_result['complete']}). "
        "A plain VACUUM after each simulated day stands in for autovacuum (freed pages are reused, not returned "
        "to the OS).\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--per-day", type=int, default=1000, help="conversations per simulated day")
    parser.add_argument("--retention-days", type=int, default=30)
    parser.add_argument("--new-share", type=float, default=0.2, help="share of conversations from new customers")
    parser.add_argument("--every", type=int, default=10, help="print sizes every this many days")
    parser.add_argument("--record", action="store_true", help="write the result into docs/PERFORMANCE.md")
    args = parser.parse_args()
    command = f".venv/bin/python -m scripts.bench.retention {' '.join(sys.argv[1:])}".strip()
    with tempfile.TemporaryDirectory(prefix="bench-retention-") as tmp:
        stack = Stack(Path(tmp), LOG_LEVEL="WARNING")
        if not stack.postgres:
            sys.exit("the retention benchmark needs PostgreSQL on 127.0.0.1:5432")
        stack.manage("migrate", "--no-input", "-v0")
        os.environ.update(stack.env)
        try:
            result = simulate(args.days, args.per_day, args.retention_days, args.every, args.new_share)
        finally:
            from django.db import connections

            connections.close_all()
            stack.stop_all()
    text = report(result, args, command)
    print(text)
    if args.record:
        from scripts.bench.run import record

        record("retention", text)


if __name__ == "__main__":
    main()
