"""One sidecar on the PostgreSQL state store, and the takeover of a shard (issue 15).

    .venv/bin/python -m scripts.bench.sidecar_shard [--sessions 10,100,500] [--takeover 100] [--no-record]

Runs the real sidecar (`node whatsapp/sidecar/src/server.js`, sandbox transport) with
SIDECAR_STATE_STORE=postgres against a throwaway database on the local PostgreSQL
(postgres@127.0.0.1, the tables created from whatsapp/sidecar/test/state-schema.sql, the
DDL of Django's models), driven over its HTTP API only, as scripts.bench.sidecar_capacity
does for the file store:
- capacity: memory, CPU, start-up of all N sessions and the send rate at each N, with every
  state write a fenced PostgreSQL transaction;
- takeover of a shard of K paired sessions: owner A holds them; A is SIGKILLed, the token
  is bumped as Django's new owner does (one UPDATE of whatsapp_shard), owner B starts on a
  fresh data directory (another host: nothing on disk) and starts every session until all
  report canSend. Timed from the kill to the last canSend, once one at a time (today's
  lifecycle worker) and once 10 at a time (the staggered start of docs/SCALING.md). B runs
  with manual sandbox pairing, so a session whose credentials did not come from
  PostgreSQL would show a QR and fail the run; a key A sent is retried on B and must come
  back as a duplicate;
- a paused stale owner: the owner is SIGSTOPped, the shard taken over, then the old
  process resumed: time until it has closed every socket (the periodic fence check).
"""

from __future__ import annotations

import argparse
import os
import signal
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from scripts.bench.run import header, record
from scripts.bench.sidecar_capacity import CLIENTS, Sidecar, measure, send_burst, start_all, tenants
from scripts.bench.stack import ROOT, wait_until

SCHEMA = ROOT / "whatsapp" / "sidecar" / "test" / "state-schema.sql"
ADMIN_DSN = "host=127.0.0.1 user=postgres dbname=postgres connect_timeout=3"
STAGGERED = 10


class StateDb:
    """A throwaway database holding the sidecar state tables."""

    def __init__(self) -> None:
        self.name = f"bench_sidecar_shard_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {self.name}")
        self.url = f"postgres://postgres@127.0.0.1:5432/{self.name}"
        self.conn = psycopg.connect(f"host=127.0.0.1 user=postgres dbname={self.name}", autocommit=True)
        self.conn.execute(SCHEMA.read_text())

    def set_token(self, shard: str, token: int) -> None:
        """What Django's new owner does when it takes the shard: a new fencing token."""
        self.conn.execute(
            "INSERT INTO whatsapp_shard (name, fencing_token) VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET fencing_token = EXCLUDED.fencing_token", (shard, token))

    def bytes_of(self, like: str) -> int:
        row = self.conn.execute("SELECT coalesce(sum(octet_length(value)), 0) FROM whatsapp_sidecar_state "
                                "WHERE kind LIKE %s", (like,)).fetchone()
        return int(row[0])

    def drop(self) -> None:
        self.conn.close()
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


def pg_env(db: StateDb, shard: str, token: int, **extra: str) -> dict[str, str]:
    return {"SIDECAR_STATE_STORE": "postgres", "SIDECAR_STATE_DATABASE_URL": db.url, "SIDECAR_SHARD": shard,
            "SIDECAR_FENCING_TOKEN": str(token), **extra}


def capacity(db: StateDb, n: int, work: Path) -> dict:
    db.conn.execute("TRUNCATE whatsapp_sidecar_state")
    shard = f"cap{n}"
    db.set_token(shard, 1)
    result = measure(n, work, extra_env=pg_env(db, shard, 1))
    result["auth_kb_per_session"] = db.bytes_of("auth-%") / 1024 / n
    result["idem_bytes_per_send"] = db.bytes_of("idempotency%") / result["sends"]["count"]
    return result


def check_takeover(owner: Sidecar, names: list[str], probe: dict) -> None:
    """Every session connected from the shared credentials with one socket; the probe key not re-sent."""
    for t in names:
        status = owner.call("GET", f"/sessions/{t}/status")[1]
        sockets = owner.call("GET", f"/sandbox/{t}/state")[1]["manager"]["socketsCreated"]
        if not status["canSend"] or status["qr"] or sockets != 1:
            raise RuntimeError(f"takeover: {t} canSend={status['canSend']} qr={bool(status['qr'])} sockets={sockets}")
    code, answer = owner.call("POST", f"/sessions/{names[0]}/messages", probe["body"])
    if code != 200 or not answer.get("duplicate") or answer.get("messageId") != probe["messageId"]:
        raise RuntimeError(f"takeover: the retried key was not a duplicate of the first owner's send: {code} {answer}")
    if owner.call("GET", f"/sandbox/{names[0]}/sent")[1]["sent"]:
        raise RuntimeError("takeover: the new owner sent a message the old one had sent")


def takeover(db: StateDb, k: int, work: Path) -> dict:
    shard, token = "takeover", 1
    names = tenants(k)
    db.set_token(shard, token)
    owner = Sidecar(work / "owner-1", work / "takeover.log", pg_env(db, shard, token))
    start_all(owner, names, CLIENTS)  # pairs them: credentials in PostgreSQL
    send_burst(owner, names, 2 * k)
    probe_body = {"to": "+15550009999", "text": "takeover probe", "idempotencyKey": "takeover-probe"}
    code, answer = owner.call("POST", f"/sessions/{names[0]}/messages", probe_body)
    assert code == 200, answer
    probe = {"body": probe_body, "messageId": answer["messageId"]}
    result: dict = {"sessions": k}
    for label, clients in (("sequential", 1), ("staggered", STAGGERED)):
        killed_at = time.perf_counter()
        owner.stop(signal.SIGKILL)
        token += 1
        db.set_token(shard, token)
        bumped_at = time.perf_counter()
        owner = Sidecar(work / f"owner-{token}", work / "takeover.log",
                        pg_env(db, shard, token, SIDECAR_SANDBOX_PAIRING="manual"))
        boot = owner.ready_at - owner.spawned_at
        starts = start_all(owner, names, clients)
        total = time.perf_counter() - killed_at
        check_takeover(owner, names, probe)
        result[label] = {"bump_ms": (bumped_at - killed_at) * 1000, "boot_s": boot, "start_s": starts, "total_s": total}
        print(f"takeover of {k} sessions, {label} ({clients} at a time): token bumped {(bumped_at - killed_at) * 1000:.0f} ms "
              f"after the kill, new sidecar up in {boot:.2f} s, all canSend {starts:.2f} s later; {total:.2f} s in all")

    # A paused stale owner: stopped (SIGSTOP), its shard taken over, then resumed.
    stale = owner
    stale.proc.send_signal(signal.SIGSTOP)
    token += 1
    db.set_token(shard, token)
    owner = Sidecar(work / f"owner-{token}", work / "takeover.log",
                    pg_env(db, shard, token, SIDECAR_SANDBOX_PAIRING="manual"))
    start_all(owner, names, STAGGERED)
    resumed_at = time.perf_counter()
    stale.proc.send_signal(signal.SIGCONT)
    wait_until(lambda: stale.call("GET", "/healthz")[1]["sessions"] == 0, 30, "the resumed stale owner closing its sockets")
    result["stale_close_s"] = time.perf_counter() - resumed_at
    code, answer = stale.call("GET", f"/sessions/{names[0]}/status")
    if code != 409 or answer.get("error") != "fenced":
        raise RuntimeError(f"the stale owner still answers commands: {code} {answer}")
    print(f"a paused owner resumed after the takeover closed its {k} sockets in {result['stale_close_s']:.2f} s "
          "and answers 409 fenced")
    stale.stop(signal.SIGKILL)
    owner.stop()
    return result


def format_result(levels: list[dict], take: dict | None, load: tuple[float, float]) -> str:
    rows = "\n".join(
        f"| {r['sessions']} | {r['base_rss']:.0f} | {r['rss']:.0f} | {max(0.0, r['per_session_kb']):.0f} | "
        f"{r['rss_after_sends']:.0f} ({r['sends']['count']}) | {r['base_fds']} / {r['fds']} | {r['idle_cpu_pct']:.1f} | "
        f"{r['start_s']:.2f} | {r['start_cpu_ms_per_session']:.1f} | {r['sends']['per_s']:.0f} | "
        f"{r['sends']['p50_ms']:.1f} / {r['sends']['p99_ms']:.1f} | {r['sends']['cpu_ms_per_msg']:.2f} |"
        for r in levels)
    text = ("One sidecar process, sandbox transport, `SIDECAR_STATE_STORE=postgres` (every state write fenced: one statement, or a transaction for "
            "writes of several statements, on the local PostgreSQL 15, the same server the rest of the machine's jobs use), driven over "
            f"its HTTP API from {CLIENTS} keep-alive connections; log level info to a file; webhooks off. "
            f"Load average of the machine (2 cores shared with other jobs): {load[0]:.1f} at the start, "
            f"{load[1]:.1f} at the end.\n\n"
            "| sessions | RSS empty MB | RSS connected MB | KB per session | RSS after sends MB (sends) | fds empty / connected "
            "| idle CPU % | start all s | start CPU ms/session | sends/s | send p50 / p99 ms | CPU ms/send |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|\n" + rows + "\n")
    if levels:
        last = levels[-1]
        text += (f"\nIn PostgreSQL per session: {last['auth_kb_per_session']:.2f} KB of credentials (sandbox creds), "
                 f"{last['idem_bytes_per_send']:.0f} bytes of idempotency rows' values per send (the record and the "
                 "message-id row). The sidecar's fds include its pool's connections (at most 10).\n")
    if take:
        s, p = take["sequential"], take["staggered"]
        text += (f"\nTakeover of a shard of {take['sessions']} paired sessions (owner SIGKILLed, token bumped, new "
                 "owner on an empty data directory starts every session until all report canSend; timed from the "
                 "kill): one at a time "
                 f"{s['boot_s']:.2f} s to start the sidecar + {s['start_s']:.2f} s for the sessions = "
                 f"**{s['total_s']:.2f} s**; {STAGGERED} at a time {p['boot_s']:.2f} s + {p['start_s']:.2f} s = "
                 f"**{p['total_s']:.2f} s**. Every session connected with the credentials from PostgreSQL (manual "
                 "sandbox pairing: none showed a QR), one socket each, and a key the first owner had sent came back "
                 "as a duplicate without being sent again. Not included: the wait for the dead owner's lease to "
                 "expire and the Celery worker's start (docs/SCALING.md has the whole budget).\n"
                 f"\nA paused owner (SIGSTOP) whose shard was taken over closed all its {take['sessions']} sockets "
                 f"**{take['stale_close_s']:.2f} s** after it was resumed (periodic fence check, "
                 "`SIDECAR_FENCE_CHECK_MS` 2000), and from then on answered 409 fenced.\n")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", default="10,100,500", help="comma-separated session counts")
    parser.add_argument("--takeover", type=int, default=100, help="sessions in the shard taken over (0: skip)")
    parser.add_argument("--no-record", action="store_true", help="print only; do not write docs/PERFORMANCE.md")
    args = parser.parse_args()
    counts = [int(c) for c in args.sessions.split(",") if c.strip()]
    load_before = os.getloadavg()[0]
    db = StateDb()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-sidecar-shard-") as tmp:
            work = Path(tmp)
            levels = [capacity(db, n, work) for n in counts]
            take = takeover(db, args.takeover, work) if args.takeover else None
    finally:
        db.drop()
    load = (load_before, os.getloadavg()[0])
    print(f"load average: {load[0]:.1f} at the start, {load[1]:.1f} at the end")
    if not args.no_record:
        command = ".venv/bin/python -m scripts.bench.sidecar_shard"
        if args.sessions != "10,100,500" or args.takeover != 100:
            command += f" --sessions {args.sessions} --takeover {args.takeover}"
        record("sidecar_shard", header("Sidecar on the PostgreSQL state store, and shard takeover", command)
               + "\n" + format_result(levels, take, load))


if __name__ == "__main__":
    main()
