"""Where one signed Twilio webhook spends its time, in-process: the SQL statements it sends
(Django's own query log) and a cProfile of N requests through Django's test client, on a
fresh stack (PostgreSQL database, redis-server) like the benchmark's.

    .venv/bin/python -m scripts.bench.profile_webhook [--requests 300] [--top 25]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import tempfile
import time
import uuid
from pathlib import Path

from scripts.bench.stack import Stack, signed_twilio_form


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--dump", default="", help="also write the cProfile stats to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        stack = Stack(Path(tmp))
        try:
            stack.setup()
            os.environ.update({**stack.env, "DJANGO_DEBUG": "true"})
            profile(stack, args.requests, args.top, args.dump)
        finally:
            stack.stop_all()


def profile(stack: Stack, requests: int, top: int, dump: str = "") -> None:
    import django

    django.setup()
    from django.db import connection, reset_queries
    from django.test import Client

    client = Client()
    base = "http://testserver"

    def post(i: int, sid: str | None = None):
        sid = sid or "SM" + uuid.uuid4().hex
        form, signature = signed_twilio_form(base, "bench", sid, f"+1555{i:07d}", "What are your opening hours?")
        response = client.post("/webhooks/twilio/bench/", data=form, content_type="application/x-www-form-urlencoded",
                               HTTP_X_TWILIO_SIGNATURE=signature)
        assert response.status_code == 200, response.content
        return sid

    post(0)  # warm: imports, first connection
    for label, phone, again in [("new contact", 1, None), ("known contact", 1, None), ("duplicate", 2, "dup")]:
        if again:
            sid = post(phone)
            reset_queries()
            post(phone, sid)
        else:
            reset_queries()
            post(phone)
        print(f"-- {label}: {len(connection.queries)} SQL statements")
        for q in connection.queries:
            print(f"   {q['time']}s  {q['sql'][:150]}")
    started = time.perf_counter()
    profiler = cProfile.Profile()
    profiler.enable()
    for i in range(requests):
        post(10 + i % 50)
    profiler.disable()
    elapsed = time.perf_counter() - started
    print(f"-- {requests} webhooks in process: {elapsed / requests * 1000:.2f} ms each (profiled)")
    if dump:
        profiler.dump_stats(dump)
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(top)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


if __name__ == "__main__":
    main()
