"""What one task publish costs the webhook: N `whatsapp.pipeline.enqueue_reply` calls
(send_task by name, the producer pool Celery keeps, this project's celeryconfig) against a
redis-server of its own, with and without the `task-sent` event (task_send_sent_event),
and with a countdown (the debounce) and without. Interleaved rounds, so other jobs on the
machine weigh on each variant alike.

    .venv/bin/python -m scripts.bench.publish [--count 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from scripts.bench.stack import Stack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-publish-") as tmp:
        stack = Stack(Path(tmp))
        try:
            stack.start_redis()
            import os

            os.environ.update(stack.env)
            import django

            django.setup()
            measure(args.count, args.rounds)
        finally:
            stack.stop_all()


def measure(count: int, rounds: int) -> None:
    from celery import current_app

    from whatsapp import pipeline

    variants = {
        "sent event on, no countdown (today)": (True, None),
        "sent event off, no countdown": (False, None),
        "sent event on, countdown 1.5 s (the debounce)": (True, 1.5),
        "sent event off, countdown 1.5 s": (False, 1.5),
    }
    totals = {name: 0.0 for name in variants}
    pipeline.enqueue_reply(0)  # the first publish opens the connection
    for _ in range(rounds):
        for name, (sent_event, countdown) in variants.items():
            current_app.conf.task_send_sent_event = sent_event
            started = time.perf_counter()
            for i in range(count // rounds):
                assert pipeline.enqueue_reply(i, countdown=countdown)
            totals[name] += time.perf_counter() - started
    n = (count // rounds) * rounds
    for name, seconds in totals.items():
        print(f"{name:48s} {seconds / n * 1e6:7.0f} us per publish ({n / seconds:6.0f}/s)")


if __name__ == "__main__":
    main()
