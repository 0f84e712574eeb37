"""Benchmarks: print numbers and record them in docs/PERFORMANCE.md with the machine, the
date and the command.

    .venv/bin/python -m scripts.bench.run all          (or: make bench)
    .venv/bin/python -m scripts.bench.run webhook|pipeline|failover|memory
    .venv/bin/python -m scripts.bench.run --quick      (or: make bench-quick)

--quick runs the webhook and the pipeline with small counts (the same ratios, a noisier
estimate) in under a minute, prints each ratio against issue 16's target and records
nothing: a developer's loop. --repeat N runs the chosen benchmarks N times and prints the
spread of the ratios (the machine is shared: one run's number is not the number).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psutil

from scripts.bench import cpu
from scripts.bench.load import combine, run_load
from scripts.bench.stack import PY, ROOT, Stack, percentile, signed_twilio_form, wait_until

DOC = ROOT / "docs" / "PERFORMANCE.md"


def post_webhooks(stack: Stack, count: int, phone_prefix: str = "+1666", body: str = "hello") -> float:
    """Post `count` signed webhooks over one keep-alive connection; return when started."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", stack.web_port, timeout=10)
    started = time.time()
    for i in range(count):
        form, signature = signed_twilio_form(f"http://127.0.0.1:{stack.web_port}", "bench", "SM" + uuid.uuid4().hex,
                                             f"{phone_prefix}{i:07d}", body)
        conn.request("POST", "/webhooks/twilio/bench/", body=form,
                     headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature})
        conn.getresponse().read()
    return started


# Issue 16: the ratios measured in one run, on the same machine.
TARGETS = {"webhook": 0.30, "webhook_p99_ms": 20.0, "pipeline": 0.35}
# How the stack runs (command-line options), to measure one choice against another.
OPTIONS = {"connections": 4, "web_workers": 2, "web_threads": 1, "web_config": False, "send_pool": "prefork", "send_concurrency": 2, "send_prefetch": 0,
           "ai_concurrency": 2, "count": 0, "cpu": False}
QUICK = {"webhook": {"seconds": 4, "rounds": 4}, "pipeline": {"count": 100}}


def bench_webhook(stack: Stack, seconds: float = 10, connections: int = 0, rounds: int = 5) -> dict:
    """`seconds` of each load, taken in `rounds` alternating slices (webhook, trivial,
    webhook, ...): on a shared machine the other jobs' load then weighs on both alike, and
    the ratio is what carries over."""
    connections = connections or OPTIONS["connections"]
    start_web(stack)
    runs: dict[str, list] = {"webhook": [], "trivial": []}
    spent: dict[str, dict] = {"webhook": {}, "trivial": {}}
    for _ in range(rounds):
        for kind, path in (("webhook", "/webhooks/twilio/bench/"), ("trivial", "/healthz")):
            before = cpu.snapshot() if OPTIONS["cpu"] else None
            runs[kind].append(run_load(stack.web_port, path, kind, seconds / rounds, connections))
            if before is not None:
                cpu.add(spent[kind], {**cpu.seconds_by_role(before, cpu.snapshot()),
                                      "load generator": runs[kind][-1]["client_cpu_seconds"]})
    webhook, trivial = combine(runs["webhook"]), combine(runs["trivial"])
    result = {"webhook": webhook, "trivial": trivial, "ratio": webhook["rps"] / trivial["rps"]}
    print(f"webhook: {webhook['rps']:.0f} req/s p50 {webhook['p50_ms']:.1f} ms p99 {webhook['p99_ms']:.1f} ms "
          f"errors {webhook['errors']}")
    print(f"trivial view: {trivial['rps']:.0f} req/s p50 {trivial['p50_ms']:.1f} ms p99 {trivial['p99_ms']:.1f} ms")
    if OPTIONS["cpu"]:
        for kind, counted in (("webhook", webhook), ("trivial", trivial)):
            print(f"  {kind}: " + cpu.line(spent[kind], counted["requests"], "request"))
    print(f"ratio webhook/trivial: {result['ratio']:.2f} (target >= {TARGETS['webhook']:.2f}: "
          f"{verdict(result['ratio'] >= TARGETS['webhook'])}); webhook p99 {webhook['p99_ms']:.1f} ms "
          f"(target <= {TARGETS['webhook_p99_ms']:.0f} ms: {verdict(webhook['p99_ms'] <= TARGETS['webhook_p99_ms'])})")
    return result


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def bench_pipeline(stack: Stack, count: int = 300) -> dict:
    count = OPTIONS["count"] or count
    stack.start_fake_twilio()
    start_web(stack)
    stack.start_worker("ai", "ai,default", OPTIONS["ai_concurrency"], "-I", "scripts.bench.chain_tasks")
    stack.start_worker("send", "send", OPTIONS["send_concurrency"], "-I", "scripts.bench.chain_tasks",
                       *(["-P", "threads"] if OPTIONS["send_pool"] == "threads" else []),
                       *(["--prefetch-multiplier", str(OPTIONS["send_prefetch"])] if OPTIONS["send_prefetch"] else []))
    time.sleep(2)
    # The baseline first: measured after the pipeline it would share the CPU with the
    # fake Twilio's last status callbacks (and look slower than it is).
    # In a process of its own: Celery keeps its broker pool (this run's Redis port) for
    # the life of a process, and --repeat starts a new stack each time.
    code = f"from scripts.bench.chain_tasks import run_chains; print(*run_chains({stack.env['REDIS_URL']!r}, {count}))"
    chain_cpu_before = cpu.snapshot() if OPTIONS["cpu"] else None
    chain_seconds, enqueuer_cpu = (float(v) for v in subprocess.run(
        [PY, "-c", code], cwd=ROOT, env=stack.env, check=True, capture_output=True, text=True).stdout.split()[-2:])
    chain_rate = count / chain_seconds
    if chain_cpu_before is not None:
        chain_spent = {**cpu.seconds_by_role(chain_cpu_before, cpu.snapshot()), "bench (enqueues chains)": enqueuer_cpu}
    before = db_counters(stack)
    cpu_before, own_before = cpu.snapshot(), time.process_time()
    started = post_webhooks(stack, count)
    posted = time.time()
    done = seen_at(lambda: stack.twilio_count() >= count, 300, "every reply at Twilio")
    spent = {**cpu.seconds_by_role(cpu_before, cpu.snapshot()), "bench (posts, polls)": time.process_time() - own_before}
    pipeline_rate = count / (done - started)
    writes = per_message(before, db_counters(stack, settle=11), count)

    result = {"count": count, "pipeline_per_s": pipeline_rate, "chain_per_s": chain_rate,
              "ratio": pipeline_rate / chain_rate, "writes": writes}
    print(f"pipeline: {count} messages webhook -> accepted by Twilio at {pipeline_rate:.1f} msg/s "
          f"(webhooks posted one after another in {posted - started:.1f} s, last reply {done - posted:.1f} s later)")
    if writes:
        print("per message, in PostgreSQL: " + ", ".join(f"{v:.1f} {k}" for k, v in writes.items()))
    if OPTIONS["cpu"]:
        print("  " + cpu.line(spent, count, "message"))
        print("  bare chain: " + cpu.line(chain_spent, count, "chain"))
    print(f"bare two-task chain: {chain_rate:.1f} chains/s; ratio pipeline/chain: {result['ratio']:.2f} "
          f"(target >= {TARGETS['pipeline']:.2f}: {verdict(result['ratio'] >= TARGETS['pipeline'])})")
    return result


def db_counters(stack: Stack, settle: float = 1.5) -> dict | None:
    """This database's transaction and row counters (pg_stat_database). PostgreSQL counts
    every statement run outside a transaction as a transaction of its own. A backend
    reports its counts at the end of a transaction at most once a second, and one that
    then goes idle holds the rest back for up to 10 s (PostgreSQL 15's
    PGSTAT_IDLE_INTERVAL): after a load, `settle` must outlast that."""
    if not stack.postgres:
        return None
    import psycopg

    time.sleep(settle)
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute("SELECT xact_commit, tup_inserted, tup_updated, tup_deleted FROM pg_stat_database "
                           "WHERE datname = %s", (stack.db_name,)).fetchone()
    return dict(zip(["transactions", "rows inserted", "rows updated", "rows deleted"], row, strict=True))


def per_message(before: dict | None, after: dict | None, count: int) -> dict:
    if not before or not after:
        return {}
    return {k: (after[k] - before[k]) / count for k in before}


def start_web(stack: Stack) -> None:
    stack.start_web(workers=OPTIONS["web_workers"], threads=OPTIONS["web_threads"], config=OPTIONS["web_config"])


def seen_at(predicate, timeout: float, what: str) -> float:
    """The time at which `predicate` (a question to the fake Twilio) first held, polled
    every 20 ms. The fake does not publish its own receive time (its private fields stay
    private), so the bench watches: at most one poll (~20-30 ms) late."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.time()
        time.sleep(0.02)
    raise RuntimeError(f"timed out waiting for {what}")


class HungServer:
    """Accepts connections and never answers: a hung WhatsApp side."""

    def __init__(self, port: int):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(512)
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)


def bench_failover(stack: Stack, messages: int = 12) -> dict:
    """Baileys enabled first and hung; the time from webhook to the reply accepted by
    Twilio, one message at a time, before and after the breaker opens."""
    HungServer(stack.sidecar_port)
    stack.start_fake_twilio()
    stack.start_web(workers=2)
    stack.start_worker("ai", "ai,default", 2)
    stack.start_worker("send", "send", 2)
    time.sleep(2)
    timings = []
    for i in range(messages):
        started = post_webhooks(stack, 1, phone_prefix=f"+1777{i:02d}")
        phone = f"whatsapp:+1777{i:02d}0000000"
        seen = seen_at(lambda p=phone: [m for m in stack.twilio_messages() if m["to"] == p], 120, "the reply")
        timings.append(seen - started)
        print(f"message {i + 1}: answered through Twilio after {timings[-1]:.2f} s")
    opened = [t for t in timings if t < 1.0]
    result = {"timings": timings, "first": timings[0], "after_open_p50": percentile(timings[-5:], 50),
              "after_open_max": max(timings[-5:]), "under_1s": len(opened)}
    print(f"first message: {timings[0]:.2f} s; breaker open (last 5): median {result['after_open_p50']:.2f} s, "
          f"max {result['after_open_max']:.2f} s")
    return result


def tree_rss_mb(proc) -> float:
    try:
        p = psutil.Process(proc.pid)
        return sum(x.memory_info().rss for x in [p, *p.children(recursive=True)]) / 1e6
    except psutil.Error:
        return float("nan")


def bench_memory(stack: Stack, count: int = 300) -> dict:
    stack.start_fake_twilio()
    stack.start_web(workers=2)
    stack.start_worker("ai", "ai,default", 2)
    stack.start_worker("send", "send", 2)
    stack.start_worker("baileys", "baileys", 1, SIDECAR_SUPERVISOR="1")
    time.sleep(6)
    names = ["web", "ai", "send", "baileys"]
    at_rest = {n: tree_rss_mb(stack.procs[n]) for n in names}
    post_webhooks(stack, count)
    wait_until(lambda: len(stack.twilio_messages()) >= count, 300, "every reply")
    loaded = {n: tree_rss_mb(stack.procs[n]) for n in names}
    sidecar = [p for p in psutil.process_iter(["cmdline"]) if "sidecar/src/server.js" in " ".join(p.info["cmdline"] or [])]
    sidecar_mb = sum(p.memory_info().rss for p in sidecar) / 1e6 if sidecar else float("nan")
    for n in names:
        print(f"{n:8s} at rest {at_rest[n]:7.1f} MB   after {count} messages {loaded[n]:7.1f} MB")
    print(f"sidecar  {sidecar_mb:7.1f} MB (inside the baileys worker's tree above)")
    return {"at_rest": at_rest, "loaded": loaded, "sidecar": sidecar_mb, "count": count}


def machine() -> str:
    return (f"{platform.node()}: {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}")


def record(name: str, text: str) -> None:
    """Replace this benchmark's section in docs/PERFORMANCE.md."""
    DOC.parent.mkdir(exist_ok=True)
    doc = DOC.read_text() if DOC.exists() else "# Performance\n\nNumbers written by `make bench`.\n"
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    section = f"{begin}\n{text.strip()}\n{end}"
    if begin in doc:
        doc = re.sub(re.escape(begin) + r".*?" + re.escape(end), lambda _: section, doc, flags=re.S)
    else:
        doc = doc.rstrip() + "\n\n" + section + "\n"
    DOC.write_text(doc)


def header(name: str, command: str) -> str:
    return f"## {name}\n\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine()}  \nCommand: `{command}`\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", nargs="?", choices=["webhook", "pipeline", "failover", "memory", "all"])
    parser.add_argument("--quick", action="store_true",
                        help="webhook and pipeline with small counts, ratios vs targets, nothing recorded")
    parser.add_argument("--repeat", type=int, default=1, help="run N times and print the spread of the ratios")
    parser.add_argument("--connections", type=int, default=4, help="the webhook benchmark's load: connections")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn --workers")
    parser.add_argument("--web-threads", type=int, default=1, help="gunicorn --threads (more than 1: gthread workers)")
    parser.add_argument("--web-config", action="store_true",
                        help="gunicorn with the Procfile's -c python:project.gunicorn (access log) and LOG_LEVEL=INFO")
    parser.add_argument("--send-pool", choices=["prefork", "threads"], default="prefork")
    parser.add_argument("--send-concurrency", type=int, default=2)
    parser.add_argument("--send-prefetch", type=int, default=0,
                        help="the send worker's --prefetch-multiplier (0: celeryconfig's, 1)")
    parser.add_argument("--ai-concurrency", type=int, default=2, help="the bot's worker's -c")
    parser.add_argument("--count", type=int, default=0, help="the pipeline's messages (0: 300, --quick 100)")
    parser.add_argument("--cpu", action="store_true",
                        help="also print the CPU each part of the system spent per request / message")
    args = parser.parse_args()
    defaults = dict(OPTIONS)
    OPTIONS.update(connections=args.connections, web_workers=args.web_workers, web_threads=args.web_threads, web_config=args.web_config, send_pool=args.send_pool,
                   send_concurrency=args.send_concurrency, send_prefetch=args.send_prefetch, ai_concurrency=args.ai_concurrency, count=args.count, cpu=args.cpu)
    if OPTIONS != defaults:
        print(f"options: {OPTIONS}")
    if args.which is None:
        args.which = "quick" if args.quick else "all"
    if args.which == "all":
        which = ["webhook", "pipeline"] if args.quick else ["webhook", "pipeline", "failover", "memory"]
    elif args.which == "quick":
        which = ["webhook", "pipeline"]
    else:
        which = [args.which]
    started = time.monotonic()
    ratios: dict[str, list[float]] = {}
    for _ in range(args.repeat):
        results = run_quick() if args.which == "quick" else {name: run_one(name, args.quick) for name in which}
        for name, result in results.items():
            if "ratio" in result:
                ratios.setdefault(name, []).append(result["ratio"])
    if args.repeat > 1 or args.quick:
        for name, values in ratios.items():
            print(f"{name} ratio over {len(values)} run(s): " + ", ".join(f"{v:.2f}" for v in values)
                  + f"; min {min(values):.2f} median {percentile(values, 50):.2f} max {max(values):.2f}"
                  + f" (target >= {TARGETS[name]:.2f})")
    print(f"bench took {time.monotonic() - started:.0f} s")


def run_quick() -> dict:
    """Webhook then pipeline on one stack (one database migration instead of two): between
    them the web server stops and Redis restarts empty, so the pipeline's workers never see
    the webhook benchmark's thousands of queued replies."""
    with tempfile.TemporaryDirectory(prefix="bench-quick-") as tmp:
        stack = Stack(Path(tmp))
        try:
            stack.setup()
            print("== webhook (quick)")
            webhook = bench_webhook(stack, **QUICK["webhook"])
            stack.stop("web")
            stack.restart_redis()
            print("== pipeline (quick)")
            pipeline = bench_pipeline(stack, **QUICK["pipeline"])
        finally:
            stack.stop_all()
    return {"webhook": webhook, "pipeline": pipeline}


def run_one(name: str, quick: bool) -> dict:
    command = f".venv/bin/python -m scripts.bench.run {name}"
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        overrides = {"BREAKER_FAIL_MAX": 3, "BREAKER_RESET_TIMEOUT": 30} if name == "failover" else {}
        stack = Stack(Path(tmp), **overrides)
        try:
            stack.setup(("--baileys",) if name == "failover" else ())
            print(f"== {name}" + (" (quick)" if quick else ""))
            result = globals()[f"bench_{name}"](stack, **(QUICK.get(name, {}) if quick else {}))
        finally:
            stack.stop_all()
    if not quick:
        record(name, header(name.capitalize(), command) + "\n" + format_result(name, result))
    return result


def format_result(name: str, r: dict) -> str:
    if name == "webhook":
        w, t = r["webhook"], r["trivial"]
        return ("| endpoint | req/s | p50 ms | p99 ms | errors |\n|---|---|---|---|---|\n"
                f"| signed Twilio webhook (stores, enqueues) | {w['rps']:.0f} | {w['p50_ms']:.1f} | {w['p99_ms']:.1f} | {w['errors']} |\n"
                f"| trivial view (/healthz) | {t['rps']:.0f} | {t['p50_ms']:.1f} | {t['p99_ms']:.1f} | {t['errors']} |\n"
                f"\nRatio webhook/trivial: **{r['ratio']:.2f}** (target {TARGETS['webhook']:.2f}, p99 at most "
                f"{TARGETS['webhook_p99_ms']:.0f} ms; gunicorn, {OPTIONS['web_workers']} sync workers, which close "
                f"each connection; {OPTIONS['connections']} connections from a load generator in separate processes, each reconnecting, 10 s of each load in 5 alternating slices).\n")
    if name == "pipeline":
        return (f"{r['count']} signed webhooks posted back to back; rules engine; fake Twilio; "
                f"workers ai ({OPTIONS['ai_concurrency']}) and send ({OPTIONS['send_concurrency']}, {OPTIONS['send_pool']}).\n\n"
                f"| what | per second |\n|---|---|\n| webhook -> reply accepted by Twilio | {r['pipeline_per_s']:.1f} |\n"
                f"| bare two-task Celery chain (same broker, workers) | {r['chain_per_s']:.1f} |\n"
                f"\nRatio pipeline/chain: **{r['ratio']:.2f}** (target {TARGETS['pipeline']:.2f}).\n"
                + ("\nPer message, in PostgreSQL (pg_stat_database; a statement outside a transaction counts as "
                   "one): " + ", ".join(f"{v:.1f} {k}" for k, v in r["writes"].items()) + ".\n" if r.get("writes") else ""))
    if name == "failover":
        rows = "\n".join(f"| {i + 1} | {t:.2f} |" for i, t in enumerate(r["timings"]))
        return ("Tenant with Baileys first and Twilio second; the sidecar address accepts connections and "
                "never answers. Messages sent one at a time; seconds from webhook to reply accepted by Twilio. "
                "Breaker: 3 failures open it for 30 s.\n\n"
                f"| message | seconds |\n|---|---|\n{rows}\n\n"
                f"First message: **{r['first']:.2f} s**; once the breaker is open (last 5): median "
                f"**{r['after_open_p50']:.2f} s**, max {r['after_open_max']:.2f} s. The old system needed at least "
                "30 s per message.\n")
    if name == "memory":
        rows = "\n".join(f"| {n} | {r['at_rest'][n]:.0f} | {r['loaded'][n]:.0f} |" for n in r["at_rest"])
        return ("Resident memory (MB) of each process tree (main process and its pool/children).\n\n"
                f"| process | at rest | after {r['count']} messages |\n|---|---|---|\n{rows}\n"
                f"| sidecar (node, part of baileys above) | - | {r['sidecar']:.0f} |\n")
    return str(r)


if __name__ == "__main__":
    main()
