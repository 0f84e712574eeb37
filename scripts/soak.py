"""The chaos soak (make soak): thousands of inbound messages, a tenth of them re-delivered,
while a send worker is SIGKILLed every few seconds, Redis restarts once, the WhatsApp
session drops and comes back, and the fake Twilio answers 5xx to a share of calls and
hangs on a few. It stops by itself and prints, counted at the providers' side:
answered exactly once, dead-lettered, lost, answered twice. Lost and twice must be 0.

    .venv/bin/python -m scripts.soak [--messages 2000] [--minutes 12]
"""

from __future__ import annotations

import argparse
import http.client
import random
import re
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from scripts.bench.run import header, record
from scripts.bench.stack import Stack, http_json, signed_twilio_form, wait_until

TENANT = "bench"
SEND_WORKERS = ("send_a", "send_b")


def phone(i: int) -> str:
    return f"+1888{i:07d}"


class Soak:
    # Where report() records the run in docs/PERFORMANCE.md, and under what title.
    record_name = "soak"
    title = "Soak"
    pace = 0.0  # seconds between two webhooks (0: as fast as the web server takes them)

    def command(self) -> str:
        return f".venv/bin/python -m scripts.soak --messages {self.messages}  (make soak)"

    def __init__(self, stack: Stack, messages: int, minutes: float):
        self.stack = stack
        self.messages = messages
        self.deadline = time.monotonic() + minutes * 60
        self.events: list[str] = []
        self.stop_chaos = threading.Event()

    def log(self, text: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {text}"
        self.events.append(line)
        print(line, flush=True)

    # --- the system -------------------------------------------------------------------
    def start(self) -> None:
        s = self.stack
        s.setup(("--baileys",))
        s.manage("shell", "-c", "from whatsapp.models import Tenant; "
                 f"Tenant.objects.filter(slug='{TENANT}').update(baileys_sends_per_minute=100000)")
        s.start_fake_twilio()
        s.twilio_faults(error_rate=0.1, hang_rate=0.01, hang_seconds=8)
        s.start_web(workers=2)
        s.start_worker("ai", "ai,default", 2)
        for name in SEND_WORKERS:
            self.start_send_worker(name)
        s.start_worker("baileys", "baileys", 1)
        s.start_beat()
        wait_until(lambda: http_json("GET", f"{s.env['SIDECAR_URL']}/healthz").get("ok"), 30, "the sidecar")
        self.lifecycle("start")
        wait_until(lambda: self.session_status().get("canSend"), 30, "the WhatsApp session")
        self.log("system up: web, ai, 2 send workers, baileys (sidecar, sandbox), beat, fake Twilio (10% 5xx, 1% hang)")

    def start_send_worker(self, name: str) -> None:
        self.stack.start_worker(name, "send", 1)

    def lifecycle(self, task: str) -> None:
        self.stack.manage("shell", "-c", f"from whatsapp.sessions import lifecycle; lifecycle.{task}.delay('{TENANT}')")

    def sidecar(self, method: str, path: str, body: dict | None = None):
        import json
        import urllib.request

        request = urllib.request.Request(
            f"{self.stack.env['SIDECAR_URL']}{path}", method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.stack.env.get('SIDECAR_TOKEN', 'dev-sidecar-token')}",
                     "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"{}")

    def session_status(self) -> dict:
        try:
            return self.sidecar("GET", f"/sessions/{TENANT}/status")
        except Exception:  # noqa: BLE001 - the sidecar may be restarting
            return {}

    # --- traffic ----------------------------------------------------------------------
    def send_inbound(self) -> None:
        """Every message once, and a tenth of them again (a re-delivered webhook)."""
        order = list(range(self.messages)) + random.sample(range(self.messages), self.messages // 10)
        random.shuffle(order)
        sids = {i: "SM" + uuid.uuid4().hex for i in range(self.messages)}
        conn = None
        for n, i in enumerate(order):
            body, signature = signed_twilio_form(f"http://127.0.0.1:{self.stack.web_port}", TENANT, sids[i],
                                                 phone(i), f"soak message {i}: what are your opening hours?")
            for _attempt in range(60):  # the web server is never killed, but be patient
                try:
                    conn = conn or http.client.HTTPConnection("127.0.0.1", self.stack.web_port, timeout=10)
                    conn.request("POST", f"/webhooks/twilio/{TENANT}/", body=body, headers={
                        "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature})
                    response = conn.getresponse()
                    response.read()
                    if response.status == 200:
                        break
                    if response.status >= 500:
                        self.log(f"webhook answered {response.status}: a bug")
                except (OSError, http.client.HTTPException):
                    conn = None
                time.sleep(0.5)
            if n % 500 == 0:
                self.log(f"posted {n}/{len(order)} webhooks")
            if self.pace:
                time.sleep(self.pace)
        self.log(f"posted all {len(order)} webhooks ({len(order) - self.messages} duplicates)")

    # --- chaos ------------------------------------------------------------------------
    def chaos(self) -> None:
        started = time.monotonic()
        redis_restarted = session_dropped = False
        kills = 0
        while not self.stop_chaos.wait(random.uniform(3, 6)):
            # One of the two send workers dies at a time (as on a real fleet), mid-send or not.
            victim = SEND_WORKERS[kills % len(SEND_WORKERS)]
            self.stack.kill(victim)
            kills += 1
            self.start_send_worker(victim)
            elapsed = time.monotonic() - started
            if not redis_restarted and elapsed > 25:
                self.stack.restart_redis()
                redis_restarted = True
                self.log("Redis restarted (everything in it is gone)")
            if not session_dropped and elapsed > 15:
                self.sidecar("POST", f"/sandbox/{TENANT}/disconnect", {"code": 428})
                session_dropped = True
                self.log("WhatsApp session dropped (428 connection closed); the lifecycle worker reconnects it")
        self.log(f"send worker SIGKILLed {kills} times")

    # --- counting ---------------------------------------------------------------------
    def delivered_counts(self) -> dict[str, int]:
        """Replies per customer number, as the providers saw them (what the phones got)."""
        counts: dict[str, int] = {}
        via_twilio = [m["to"].removeprefix("whatsapp:") for m in self.stack.twilio_messages()]
        via_whatsapp_web = ["+" + re.sub(r"\D", "", str(m.get("to", "")).split("@")[0])
                            for m in self.sidecar("GET", f"/sandbox/{TENANT}/sent")["sent"]]
        for number in via_twilio + via_whatsapp_web:
            counts[number] = counts.get(number, 0) + 1
        self.log(f"replies seen: {len(via_whatsapp_web)} through the WhatsApp Web session, "
                 f"{len(via_twilio)} through Twilio")
        return counts

    def settled(self) -> bool:
        pending = self.stack.sql(
            "select count(*) from whatsapp_message where (direction='out' and status in ('queued','sending'))"
            " or (direction='in' and status='received')")[0][0]
        inbound = self.stack.sql("select count(*) from whatsapp_message where direction='in'")[0][0]
        return inbound >= self.messages and pending == 0

    def run(self) -> int:
        self.start()
        chaos = threading.Thread(target=self.chaos, daemon=True)
        chaos.start()
        self.send_inbound()
        while time.monotonic() < self.deadline and not self.settled():
            time.sleep(5)
            pending = self.stack.sql("select status, count(*) from whatsapp_message where direction='out' "
                                     "group by status order by status")
            self.log(f"replies by status: {dict(pending)}")
        self.stop_chaos.set()
        chaos.join()
        # Let in-flight work finish without chaos, then count.
        wait_until(self.settled, max(30, self.deadline - time.monotonic() + 60), "the system to settle")
        return self.report()

    def report(self) -> int:
        counts = self.delivered_counts()
        dead_phones = {row[0] for row in self.stack.sql(
            "select c.phone from whatsapp_deadletter d join whatsapp_message m on m.id = d.message_id "
            "join whatsapp_contact c on c.id = m.contact_id where d.resolved_at is null")}
        reasons = dict(self.stack.sql("select reason, count(*) from whatsapp_deadletter group by reason"))
        once = twice = lost = dead = 0
        for i in range(self.messages):
            n = counts.get(phone(i), 0)
            if n == 1:
                once += 1
            elif n > 1:
                twice += 1
            elif phone(i) in dead_phones:
                dead += 1
            else:
                lost += 1
        result = "\n".join([
            f"inbound messages:        {self.messages} (+{self.messages // 10} re-delivered duplicates)",
            f"answered exactly once:   {once}",
            f"dead-lettered:           {dead} {reasons or ''}",
            f"lost:                    {lost}",
            f"answered twice or more:  {twice}",
        ])
        print(f"\n== {self.title.lower()} result (counted at the fake providers)\n" + result)
        record(self.record_name, header(self.title, self.command())
               + "\nWhat happened during the run:\n\n" + "\n".join(f"    {e}" for e in self.events
                                                         if "replies by status" not in e)
               + "\n\nResult, counted at the fake providers' side:\n\n" + "\n".join(
                   f"    {line}" for line in result.splitlines()) + "\n")
        return 0 if lost == 0 and twice == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--minutes", type=float, default=12)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        stack = Stack(
            Path(tmp), BOT_DEBOUNCE_SECONDS=0, SEND_LEASE_SECONDS=20, RECONCILE_INTERVAL_SECONDS=2,
            RECONCILE_GRACE_SECONDS=20, SEND_RETRY_BACKOFF_BASE=1, SEND_RETRY_BACKOFF_CAP=10,
            SEND_AMBIGUOUS_RESOLVE_SECONDS=120, TWILIO_READ_TIMEOUT=3, SESSION_HEALTH_INTERVAL_SECONDS=2,
            BREAKER_RESET_TIMEOUT=5,
        )
        try:
            return Soak(stack, args.messages, args.minutes).run()
        finally:
            stack.stop_all()


if __name__ == "__main__":
    sys.exit(main())
