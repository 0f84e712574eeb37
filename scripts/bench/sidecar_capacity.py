"""Capacity of one sidecar in sandbox mode (issue 15's measuring stick for shards).

    .venv/bin/python -m scripts.bench.sidecar_capacity [--sessions 10,100,500] [--takeover 100] [--no-record]

Starts the real sidecar (`node whatsapp/sidecar/src/server.js`, SIDECAR_TRANSPORT=sandbox)
directly, once per session count, on a fresh data directory, and drives it through its
HTTP API only:
- memory (RSS of the node process) and CPU at rest, after N sessions connected, and after
  a burst of sends; open file descriptors; bytes on disk per session;
- the start-up time of a whole shard: N `POST /sessions/{t}/start` (16 at a time) until
  every session reports canSend;
- the send rate: `POST /sessions/{t}/messages` round robin across the sessions from 16
  keep-alive connections, each answered only after the sandbox's automatic server ack;
- a takeover stand-in: SIGKILL the sidecar holding K paired sessions, start a fresh one on
  the same data directory, and start the K sessions until all canSend, once one at a time
  (what today's lifecycle worker, concurrency 1, does) and once 16 at a time.
The sandbox replaces WhatsApp's servers, so this measures our own per-session state
(session objects, auth store files, idempotency records, spool, HTTP), not Baileys' socket.
Webhooks are off (no SIDECAR_WEBHOOK_BASE): nothing is spooled during the run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

from scripts.bench.run import header, record
from scripts.bench.stack import ROOT, free_port, percentile, wait_until

SIDECAR_DIR = ROOT / "whatsapp" / "sidecar"
TOKEN = "bench-sidecar-token"
CLIENTS = 16


class Sidecar:
    """One node process running the sidecar on `data_dir`, and a keep-alive client per thread."""

    def __init__(self, data_dir: Path, log_path: Path, extra_env: dict[str, str] | None = None):
        self.port = free_port()
        env = {
            **os.environ,
            "SIDECAR_TOKEN": TOKEN,
            "SIDECAR_PORT": str(self.port),
            "SIDECAR_TRANSPORT": "sandbox",
            "SIDECAR_DATA_DIR": str(data_dir),
            "SIDECAR_LOG_LEVEL": "info",
        }
        for name in ("SIDECAR_WEBHOOK_BASE", "SIDECAR_WEBHOOK_SECRET", "SIDECAR_SANDBOX_PAIRING"):
            env.pop(name, None)
        env.update(extra_env or {})  # e.g. the postgres state store (scripts.bench.sidecar_shard)
        self.spawned_at = time.perf_counter()
        self.log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(["node", "src/server.js"], cwd=SIDECAR_DIR, env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.ps = psutil.Process(self.proc.pid)
        self._local = threading.local()
        wait_until(self.healthy, 30, "the sidecar answering /healthz")
        self.ready_at = time.perf_counter()

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        try:
            conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
            response = conn.getresponse()
            return response.status, json.loads(response.read() or b"{}")
        except (OSError, http.client.HTTPException):
            conn.close()
            self._local.conn = None
            raise

    def healthy(self) -> bool:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
            conn.request("GET", "/healthz")
            return conn.getresponse().status == 200
        except OSError:
            return False

    def rss_mb(self) -> float:
        return self.ps.memory_info().rss / 2**20

    def cpu_seconds(self) -> float:
        t = self.ps.cpu_times()
        return t.user + t.system

    def fds(self) -> int:
        return self.ps.num_fds()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(60)
        self.log.close()


def tenants(n: int) -> list[str]:
    return [f"cap{i:04d}" for i in range(n)]


def start_all(sidecar: Sidecar, names: list[str], clients: int) -> float:
    """Start every session, `clients` at a time; seconds until all report canSend."""
    started = time.perf_counter()

    def start(tenant: str) -> None:
        status, body = sidecar.call("POST", f"/sessions/{tenant}/start", {})
        if status != 200 or not body.get("canSend"):
            wait_until(lambda: sidecar.call("GET", f"/sessions/{tenant}/status")[1].get("canSend"), 60,
                       f"{tenant} can send")

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(start, names))
    return time.perf_counter() - started


def send_burst(sidecar: Sidecar, names: list[str], count: int, clients: int = CLIENTS) -> dict:
    """`count` sends round robin across the sessions; each returns after the server ack."""
    latencies: list[float] = []
    failures: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def send(i: int) -> None:
        tenant = names[i % len(names)]
        body = {"to": f"+1555{i % 10_000_000:07d}", "text": f"capacity message {i}",
                "idempotencyKey": f"cap-{uuid.uuid4().hex}"}
        t0 = time.perf_counter()
        status, answer = sidecar.call("POST", f"/sessions/{tenant}/messages", body)
        elapsed = time.perf_counter() - t0
        with lock:
            if status == 200 and answer.get("status") == "sent":
                latencies.append(elapsed)
            else:
                failures.append((status, answer))

    cpu0, t0 = sidecar.cpu_seconds(), time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(send, range(count)))
    wall = time.perf_counter() - t0
    cpu = sidecar.cpu_seconds() - cpu0
    if failures:
        raise RuntimeError(f"{len(failures)} sends failed, first: {failures[0]}")
    return {"count": count, "per_s": count / wall, "p50_ms": percentile(latencies, 50) * 1000,
            "p99_ms": percentile(latencies, 99) * 1000, "cpu_ms_per_msg": cpu / count * 1000}


def disk_kb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1024


def measure(n: int, work: Path, idle_seconds: float = 10.0, extra_env: dict[str, str] | None = None) -> dict:
    """One fresh sidecar with `n` sessions: memory, CPU, start-up and send rate."""
    data = work / f"data-{n}"
    sidecar = Sidecar(data, work / f"sidecar-{n}.log", extra_env)
    try:
        time.sleep(1)
        base_rss, base_fds = sidecar.rss_mb(), sidecar.fds()
        names = tenants(n)
        cpu0 = sidecar.cpu_seconds()
        start_s = start_all(sidecar, names, CLIENTS)
        start_cpu = sidecar.cpu_seconds() - cpu0
        time.sleep(2)
        cpu0 = sidecar.cpu_seconds()
        time.sleep(idle_seconds)
        idle_cpu_pct = (sidecar.cpu_seconds() - cpu0) / idle_seconds * 100
        rss_sessions, fds_sessions = sidecar.rss_mb(), sidecar.fds()
        auth_kb = disk_kb(data / "auth")
        sends = send_burst(sidecar, names, max(2000, 4 * n))
        time.sleep(2)
        rss_after_sends = sidecar.rss_mb()
        idem_kb = disk_kb(data / "idempotency")
        live = sidecar.call("GET", "/healthz")[1]["sessions"]
    finally:
        sidecar.stop()
    result = {
        "sessions": n, "live": live, "base_rss": base_rss, "rss": rss_sessions,
        "per_session_kb": (rss_sessions - base_rss) * 1024 / n, "rss_after_sends": rss_after_sends,
        "base_fds": base_fds, "fds": fds_sessions, "start_s": start_s, "start_cpu_ms_per_session": start_cpu / n * 1000,
        "idle_cpu_pct": idle_cpu_pct, "auth_kb_per_session": auth_kb / n,
        "idem_bytes_per_send": idem_kb * 1024 / sends["count"], "sends": sends,
    }
    print(f"{n:4d} sessions: RSS {base_rss:.0f} MB empty -> {rss_sessions:.0f} MB connected "
          f"({result['per_session_kb']:.0f} KB/session) -> {rss_after_sends:.0f} MB after {sends['count']} sends; fds {base_fds} -> {fds_sessions}; idle CPU {idle_cpu_pct:.1f}%")
    print(f"      start-up of all {n}: {start_s:.2f} s ({result['start_cpu_ms_per_session']:.1f} ms CPU/session); "
          f"sends {sends['per_s']:.0f}/s p50 {sends['p50_ms']:.1f} ms p99 {sends['p99_ms']:.1f} ms, "
          f"{sends['cpu_ms_per_msg']:.2f} ms CPU/send")
    return result


def takeover(k: int, work: Path) -> dict:
    """SIGKILL a sidecar holding `k` paired sessions; a fresh process on the same data dir
    brings them back, one at a time and then `CLIENTS` at a time."""
    data = work / f"takeover-{k}"
    log = work / f"takeover-{k}.log"
    names = tenants(k)
    first = Sidecar(data, log)
    start_all(first, names, CLIENTS)  # pairs them: creds on disk
    send_burst(first, names, 2 * k)
    first.stop(signal.SIGKILL)
    result = {"sessions": k}
    for label, clients in (("sequential", 1), ("parallel", CLIENTS)):
        fresh = Sidecar(data, log)
        boot = fresh.ready_at - fresh.spawned_at
        starts = start_all(fresh, names, clients)
        paired = all(fresh.call("GET", f"/sessions/{t}/status")[1]["authPaired"] for t in names)
        sockets = [fresh.call("GET", f"/sandbox/{t}/state")[1]["manager"]["socketsCreated"] for t in names]
        fresh.stop(signal.SIGKILL)
        if not paired or set(sockets) != {1}:
            raise RuntimeError(f"takeover {label}: paired={paired}, sockets per session={set(sockets)}")
        result[label] = {"boot_s": boot, "start_s": starts, "total_s": boot + starts}
        print(f"takeover of {k} paired sessions, {label} ({clients} at a time): process up in {boot:.2f} s, "
              f"all canSend {starts:.2f} s later; total {boot + starts:.2f} s")
    return result


def format_result(levels: list[dict], take: dict | None, load: tuple[float, float] | None = None) -> str:
    rows = "\n".join(
        f"| {r['sessions']} | {r['base_rss']:.0f} | {r['rss']:.0f} | {max(0.0, r['per_session_kb']):.0f} | "
        f"{r['rss_after_sends']:.0f} ({r['sends']['count']}) | {r['base_fds']} / {r['fds']} | {r['idle_cpu_pct']:.1f} | "
        f"{r['start_s']:.2f} | {r['start_cpu_ms_per_session']:.1f} | {r['sends']['per_s']:.0f} | "
        f"{r['sends']['p50_ms']:.1f} / {r['sends']['p99_ms']:.1f} | {r['sends']['cpu_ms_per_msg']:.2f} |"
        for r in levels)
    text = ("One sidecar process, sandbox transport (no WhatsApp socket: our own per-session state only), "
            f"driven over its HTTP API from {CLIENTS} keep-alive connections; a fresh data directory per row; "
            "log level info to a file; webhooks off."
            + (f" Load average of the machine (2 cores shared with other jobs): {load[0]:.1f} at the start, "
               f"{load[1]:.1f} at the end." if load else "") + "\n\n"
            "| sessions | RSS empty MB | RSS connected MB | KB per session | RSS after sends MB (sends) | fds empty / connected "
            "| idle CPU % | start all s | start CPU ms/session | sends/s | send p50 / p99 ms | CPU ms/send |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|\n" + rows + "\n"
            "\nKB per session = (RSS connected - RSS empty) / sessions; at 10 sessions it is within the noise of "
            "the garbage collector (0 shown for a negative difference).\n")
    last = levels[-1]
    text += (f"\nOn disk per session: {last['auth_kb_per_session']:.1f} KB of credentials (sandbox creds; a real "
             f"Baileys session keeps hundreds of signal key files), {last['idem_bytes_per_send']:.0f} bytes of "
             "idempotency records per send (a key record and a message-id index file).\n")
    if take:
        s, p = take["sequential"], take["parallel"]
        text += (f"\nTakeover stand-in, {take['sessions']} paired sessions: the sidecar is SIGKILLed, a fresh "
                 "process starts on the same data directory and starts every session until all report canSend. "
                 "One at a time (as today's lifecycle worker, concurrency 1, would): "
                 f"process up in {s['boot_s']:.2f} s, sessions in {s['start_s']:.2f} s, **{s['total_s']:.2f} s** in all. "
                 f"{CLIENTS} at a time: {p['boot_s']:.2f} s + {p['start_s']:.2f} s = **{p['total_s']:.2f} s**. "
                 "Every session came back paired with exactly one socket. Not included: the wait for the dead "
                 "owner's lease to expire (LIFECYCLE_LEASE_TTL_SECONDS, 30 s by default) and the Celery "
                 "worker's own start.\n")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", default="10,100,500", help="comma-separated session counts")
    parser.add_argument("--takeover", type=int, default=100, help="sessions in the takeover stand-in (0: skip)")
    parser.add_argument("--no-record", action="store_true", help="print only; do not write docs/PERFORMANCE.md")
    args = parser.parse_args()
    counts = [int(c) for c in args.sessions.split(",") if c.strip()]
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-sidecar-capacity-") as tmp:
        work = Path(tmp)
        levels = [measure(n, work) for n in counts]
        take = takeover(args.takeover, work) if args.takeover else None
        load = (load_before, os.getloadavg()[0])
    print(f"load average: {load[0]:.1f} at the start, {load[1]:.1f} at the end")
    if not args.no_record:
        command = ".venv/bin/python -m scripts.bench.sidecar_capacity"
        if args.sessions != "10,100,500" or args.takeover != 100:
            command += f" --sessions {args.sessions} --takeover {args.takeover}"
        record("sidecar_capacity", header("Sidecar capacity", command) + "\n" + format_result(levels, take, load))


if __name__ == "__main__":
    main()
