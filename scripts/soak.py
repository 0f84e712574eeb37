"""The chaos soak (make soak): thousands of inbound messages, a tenth of them re-delivered,
plus customers who write through the WhatsApp Web session itself (some of them 20,000+
characters long, answered in several parts), while a send worker is SIGKILLed every few
seconds, Redis restarts once, and the providers misbehave the way they really do:

- Twilio answers 5xx to a share of calls and hangs on a few; it stores some messages and
  then never answers (the answer is lost) while holding every message `queued` for a few
  seconds; it reports some accepted messages `undelivered`/`failed` afterwards (status
  callbacks, signed, to the web server);
- the WhatsApp session drops, and customers write during the gap (WhatsApp holds those
  messages and replays them as `append` after the reconnect);
- WhatsApp withholds the server ack of our sends for a while, then acks them, or answers
  them with ERROR (a failure receipt after the socket took the message);
- bursts of failed WhatsApp sends move replies onto Twilio, so its faults are reached.

Every fault is counted as it is injected. It stops by itself and prints, counted at the
providers' side: answered exactly once, dead-lettered, lost, answered twice. Lost and
twice must be 0. A copy that the provider itself reported failed/undelivered never reached
the phone and is not counted (docs/PERFORMANCE.md, "How the soak counts").

    .venv/bin/python -m scripts.soak [--messages 2000] [--minutes 12]
"""

from __future__ import annotations

import argparse
import collections
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
from whatsapp.text import split_text

TENANT = "bench"
# Timings short enough for a run of minutes (the defaults are sized for production).
RUN_TIMINGS = {
    "BOT_DEBOUNCE_SECONDS": 0, "SEND_LEASE_SECONDS": 20, "RECONCILE_INTERVAL_SECONDS": 2,
    "RECONCILE_GRACE_SECONDS": 20, "SEND_RETRY_BACKOFF_BASE": 1, "SEND_RETRY_BACKOFF_CAP": 10,
    "TWILIO_READ_TIMEOUT": 3, "SESSION_HEALTH_INTERVAL_SECONDS": 2,
}
SEND_WORKERS = ("send_a", "send_b")
# A customer text longer than Django's old 64 KB-ish limits cared for (WhatsApp allows
# 65,536 characters), and a rule whose answer is longer than one part.
LONG_TEXT = ("Please send me the whole catalogue. " + "I need every detail about sizes and colours. " * 500)[:21000]
LONG_ANSWER = "Our catalogue: " + " ".join(f"item {n} costs {n * 3} shekels, in stock." for n in range(150))
PART_LIMIT = 1600  # Twilio's body limit: the tenant's smallest, so every answer is split to it
TEMPLATE_SID = "HX" + "5" * 32
# Twilio reports these accepted messages as not delivered, one in every RECEIPT_FAILURE_EVERY numbers.
RECEIPT_FAILURE_EVERY = 40


def phone(i: int) -> str:
    return f"+1888{i:07d}"


def wa_phone(i: int) -> str:
    """The customers who write through the WhatsApp Web session (their own numbers)."""
    return f"+1777{i:07d}"


class Soak:
    # Where report() records the run in docs/PERFORMANCE.md, and under what title.
    record_name = "soak"
    title = "Soak"
    pace = 0.0  # seconds between two webhooks (0: as fast as the web server takes them)

    def command(self) -> str:
        return f".venv/bin/python -m scripts.soak --messages {self.messages}  (make soak)"

    @classmethod
    def command_line(cls, doc: str, messages: int, minutes: float, **stack_env) -> int:
        """Parse --messages/--minutes, run on a throwaway stack, stop everything after."""
        parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("--messages", type=int, default=messages)
        parser.add_argument("--minutes", type=float, default=minutes)
        args = parser.parse_args()
        with tempfile.TemporaryDirectory(prefix=f"{cls.record_name}-") as tmp:
            stack = Stack(Path(tmp), **RUN_TIMINGS, **stack_env)
            try:
                return cls(stack, args.messages, args.minutes).run()
            finally:
                stack.stop_all()

    def __init__(self, stack: Stack, messages: int, minutes: float):
        self.stack = stack
        self.messages = messages
        self.deadline = time.monotonic() + minutes * 60
        self.events: list[str] = []
        self.stop_chaos = threading.Event()
        self.faults: collections.Counter[str] = collections.Counter()  # every fault as it is injected
        self.wa_lock = threading.Lock()
        self.wa_expected: dict[str, int] = {}  # WhatsApp customer -> parts their answer has
        # Twilio posts status callbacks to the URL we give it, signed over that URL.
        stack.env["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{stack.web_port}"

    def log(self, text: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {text}"
        self.events.append(line)
        print(line, flush=True)

    # --- the system -------------------------------------------------------------------
    def start(self) -> None:
        s = self.stack
        s.setup(("--baileys",))
        # A template, so a reply to a customer who wrote to the session's number can go out
        # through Twilio too (Twilio's 24-hour window is closed for them).
        s.manage("shell", "-c", "from whatsapp.models import Tenant; "
                 f"Tenant.objects.filter(slug='{TENANT}').update(baileys_sends_per_minute=100000, "
                 f"twilio_template_sid='{TEMPLATE_SID}', twilio_template_variables={{'1': 'Bench'}})")
        s.manage("shell", "-c", "from bots.models import Rule; from whatsapp.models import Tenant; "
                 f"Rule.objects.create(tenant=Tenant.objects.get(slug='{TENANT}'), pattern='catalogue', "
                 f"answer={LONG_ANSWER!r})")
        s.start_fake_twilio()
        self.provider_faults()
        s.start_web(workers=2)
        s.start_worker("ai", "ai,default", 2)
        for name in SEND_WORKERS:
            self.start_send_worker(name)
        s.start_worker("baileys", "baileys", 1)
        s.start_beat()
        wait_until(lambda: http_json("GET", f"{s.env['SIDECAR_URL']}/healthz").get("ok"), 30, "the sidecar")
        self.lifecycle("start")
        wait_until(lambda: self.session_status().get("canSend"), 30, "the WhatsApp session")
        self.log("system up: web, ai, 2 send workers, baileys (sidecar, sandbox), beat, fake Twilio")

    def provider_faults(self) -> None:
        failures = {phone(i): (["undelivered", 63024] if i // RECEIPT_FAILURE_EVERY % 2 else ["failed", 63003])
                    for i in range(3, self.messages, RECEIPT_FAILURE_EVERY)}
        failures.update({wa_phone(i): ["undelivered", 63024] for i in range(5, self.messages, RECEIPT_FAILURE_EVERY)})
        self.stack.twilio_faults(error_rate=0.1, hang_rate=0.01, accept_then_hang_rate=0.05, hang_seconds=8,
                                 queued_seconds=4, callback_delay_seconds=1, receipt_failures=failures)
        self.log(f"fake Twilio: 10% 5xx, 1% hang, 5% stored then unanswered (held queued 4 s), "
                 f"{len(failures)} numbers reported undelivered/failed after acceptance")

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

    def inject_whatsapp(self, text: str, parts: int = 1) -> dict:
        """One customer message through the WhatsApp Web session, from a new number; retried
        while the sidecar restarts. Returns the sandbox state right after (heldOffline)."""
        with self.wa_lock:
            number = wa_phone(len(self.wa_expected))
            self.wa_expected[number] = parts
        body = {"from": number.removeprefix("+"), "text": text, "id": "SBXSOAK" + uuid.uuid4().hex.upper()}
        for _attempt in range(120):
            try:
                self.sidecar("POST", f"/sandbox/{TENANT}/inbound", body)
                return self.sidecar("GET", f"/sandbox/{TENANT}/state")
            except OSError:
                time.sleep(0.5)
        raise RuntimeError("the sidecar never took a WhatsApp inbound message")

    def send_whatsapp_inbound(self) -> None:
        """A tenth as many customers write through the session; every 25th is a long text."""
        long_parts = len(split_text(LONG_ANSWER, PART_LIMIT))
        for n in range(self.messages // 10):
            if n % 25 == 12:
                self.inject_whatsapp(LONG_TEXT, long_parts)
                self.faults["long message (21,000 characters; answer in parts)"] += 1
            else:
                self.inject_whatsapp(f"whatsapp message {n}: do you deliver on Fridays?")
            # As spread out as the Twilio webhooks (one for every ten of them).
            time.sleep(max(0.3, self.pace * 10))
        self.log(f"WhatsApp customers wrote {len(self.wa_expected)} messages through the session")

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
            try:
                self.provider_fault(kills)
            except OSError as exc:  # the sidecar restarting: the next turn tries again
                self.log(f"could not inject a WhatsApp fault: {exc}")
        self.log(f"send worker SIGKILLed {kills} times")

    # How often each WhatsApp fault comes back, in seconds. A reconnect at most once a
    # minute: the session must stay up 30 s between two drops, or the lifecycle worker
    # rightly gives up on a flapping session (whatsapp/session_policy.py).
    FAULT_EVERY = {"gap": 60, "unacked": 30, "failed_sends": 30}

    def provider_fault(self, turn: int) -> None:
        """The WhatsApp faults that are due, each on its own schedule."""
        now = time.monotonic()
        due = getattr(self, "fault_due", None)
        if due is None:  # the first of each a little after the start, staggered
            due = self.fault_due = {"gap": now + 45, "unacked": now + 20, "failed_sends": now + 10}
        kind = next((k for k, at in due.items() if now >= at), None)
        if kind is None:
            return
        due[kind] = now + self.FAULT_EVERY[kind]
        if kind == "gap":
            # A reconnect with customers writing during the gap: WhatsApp holds their messages.
            self.sidecar("POST", f"/sandbox/{TENANT}/disconnect", {"code": 408})
            self.faults["WhatsApp reconnects (408 connection lost)"] += 1
            held = max(self.inject_whatsapp(f"written during the gap, turn {turn}")["heldOffline"]
                       for _ in range(3))
            self.faults["WhatsApp messages written during a gap (held, replayed as append)"] += held
        elif kind == "unacked":
            # The socket takes our sends, the server acks none of them for a while; then it
            # acks them, or (every other window) answers them with ERROR: a failure receipt
            # after the socket took the message.
            error = self.faults["WhatsApp ack windows"] % 2 == 1
            self.faults["WhatsApp ack windows"] += 1
            # Short, so a few sends are caught and the breaker (3 failures) mostly stays
            # closed; released after the sidecar's 5 s ack timeout, so each caught send
            # is an unknown outcome that the pipeline must resolve, not just a slow one.
            self.sidecar("POST", f"/sandbox/{TENANT}/behavior", {"acks": "withhold"})
            time.sleep(1.5)
            self.sidecar("POST", f"/sandbox/{TENANT}/behavior", {"acks": "auto"})
            time.sleep(6)
            released = self.release_acks("error" if error else "server")
            self.faults["WhatsApp sends whose server ack was withheld"] += released
            if error:
                self.faults["WhatsApp sends answered ERROR after the write (failure receipt)"] += released
        else:
            # Sends fail outright for a burst: their replies move to Twilio and meet its faults.
            self.sidecar("POST", f"/sandbox/{TENANT}/behavior", {"failSends": 2})
            self.faults["bursts of 2 failed WhatsApp sends (replies move to Twilio)"] += 1

    def release_acks(self, status: str) -> int:
        """Release every withheld ack; the socket may be down for a moment (a reconnect)."""
        for _attempt in range(20):
            try:
                return len(self.sidecar("POST", f"/sandbox/{TENANT}/acks", {"status": status})["released"])
            except OSError:
                time.sleep(0.5)
        return 0

    # --- counting ---------------------------------------------------------------------
    def delivered_counts(self) -> dict[str, list[str]]:
        """What each customer number received, as the providers saw it: how many copies of
        each text (each part of an answer is one text). A copy the provider reported as
        failed/undelivered (Twilio's status, WhatsApp's ERROR ack) never reached the phone
        and is left out: the reply going out again after it is not a second copy."""
        received: dict[str, list[str]] = collections.defaultdict(list)
        twilio = self.stack.twilio_messages()
        sandbox = self.sidecar("GET", f"/sandbox/{TENANT}/sent")["sent"]
        failed = 0
        for m in twilio:
            if m["status"] in {"failed", "undelivered"}:
                failed += 1
            else:
                received[m["to"].removeprefix("whatsapp:")].append(m["body"])
        for m in sandbox:
            if m.get("failed"):
                failed += 1
            else:
                received["+" + re.sub(r"\D", "", str(m.get("to", "")).split("@")[0])].append(m["text"])
        self.log(f"replies seen: {len(sandbox)} through the WhatsApp Web session, {len(twilio)} through Twilio; "
                 f"{failed} of them reported failed/undelivered by the provider (not counted)")
        self.twilio_injected = http_json("GET", f"http://127.0.0.1:{self.stack.twilio_port}/_fake/messages")["injected"]
        return received

    def settled(self) -> bool:
        pending = self.stack.sql(
            "select count(*) from whatsapp_message where (direction='out' and status in ('queued','sending'))"
            " or (direction='in' and status='received')")[0][0]
        inbound = self.stack.sql("select count(*) from whatsapp_message where direction='in'")[0][0]
        return inbound >= self.messages + len(self.wa_expected) and pending == 0

    def run(self) -> int:
        self.start()
        chaos = threading.Thread(target=self.chaos, daemon=True)
        chaos.start()
        whatsapp = threading.Thread(target=self.send_whatsapp_inbound, daemon=True)
        whatsapp.start()
        self.send_inbound()
        whatsapp.join()
        while time.monotonic() < self.deadline and not self.settled():
            time.sleep(5)
            pending = self.stack.sql("select status, count(*) from whatsapp_message where direction='out' "
                                     "group by status order by status")
            self.log(f"replies by status: {dict(pending)}")
        self.stop_chaos.set()
        chaos.join()
        # Let in-flight work finish without chaos, then count.
        try:
            wait_until(self.settled, max(90, self.deadline - time.monotonic() + 60), "the system to settle")
        except RuntimeError:
            self.log("the system did not settle: " + self.unsettled())
        return self.report()

    def unsettled(self) -> str:
        """What is still open, to read in the log of a run that did not settle."""
        pending = self.stack.sql("select m.direction, m.status, c.phone, m.attempt_count, left(m.last_error, 80) "
                                 "from whatsapp_message m join whatsapp_contact c on c.id = m.contact_id "
                                 "where (m.direction='out' and m.status in ('queued','sending')) "
                                 "or (m.direction='in' and m.status='received') limit 20")
        stored = {row[0] for row in self.stack.sql(
            "select c.phone from whatsapp_message m join whatsapp_contact c on c.id = m.contact_id "
            "where m.direction='in'")}
        missing = sorted(set(self.wa_expected) - stored)
        return f"open: {pending}; WhatsApp inbound never stored: {len(missing)} {missing[:20]}"

    def report(self) -> int:
        counts = self.delivered_counts()
        dead_phones = {row[0] for row in self.stack.sql(
            "select c.phone from whatsapp_deadletter d join whatsapp_message m on m.id = d.message_id "
            "join whatsapp_contact c on c.id = m.contact_id where d.resolved_at is null")}
        reasons = dict(self.stack.sql("select reason, count(*) from whatsapp_deadletter group by reason"))
        once = twice = lost = dead = 0
        expected = {phone(i): 1 for i in range(self.messages)} | self.wa_expected
        for number, parts in expected.items():
            copies = counts.get(number, [])
            # Each part once, no text twice. Outside Twilio's 24-hour window one template
            # replaces the rest of the answer (whatsapp.delivery): then the parts before
            # it and the template are the whole answer.
            templates = sum(c.startswith("[template ") for c in copies)
            texts = collections.Counter(c for c in copies if not c.startswith("[template "))
            if templates > 1 or len(copies) > parts or any(n > 1 for n in texts.values()):
                twice += 1
                self.log(f"twice: {number} received {len(copies)} copies of {parts} parts")
            elif len(copies) == parts or templates:
                once += 1
            elif number in dead_phones:
                dead += 1
            else:
                lost += 1  # nothing, or only some parts of the answer, and no dead letter
                self.log(f"lost: {number} received {len(copies)} of {parts} parts")
        faults = dict(self.faults)
        for kind, n in sorted(self.twilio_injected.items()):
            faults[{"error": "Twilio 5xx answers", "hang": "Twilio calls that hung (no answer)",
                    "accept_then_hang": "Twilio sends stored, answer lost (held queued 4 s)",
                    "receipt_undelivered": "Twilio sends reported undelivered after acceptance",
                    "receipt_failed": "Twilio sends reported failed after acceptance"}.get(kind, kind)] = n
        result = "\n".join([
            f"inbound messages:        {self.messages} through Twilio (+{self.messages // 10} re-delivered "
            f"duplicates), {len(self.wa_expected)} through the WhatsApp Web session",
            f"answered exactly once:   {once}",
            f"dead-lettered:           {dead} {reasons or ''}",
            f"lost:                    {lost}",
            f"answered twice or more:  {twice}",
            "",
            "faults injected:",
            *(f"  {kind}: {n}" for kind, n in faults.items()),
        ])
        print(f"\n== {self.title.lower()} result (counted at the fake providers)\n" + result)
        record(self.record_name, header(self.title, self.command())
               + "\nWhat happened during the run:\n\n" + "\n".join(f"    {e}" for e in self.events
                                                         if "replies by status" not in e)
               + "\n\nResult, counted at the fake providers' side:\n\n" + "\n".join(
                   f"    {line}" for line in result.splitlines()) + "\n")
        return 0 if lost == 0 and twice == 0 else 1


def main() -> int:
    return Soak.command_line(__doc__, messages=2000, minutes=12,
                             SEND_AMBIGUOUS_RESOLVE_SECONDS=120, BREAKER_RESET_TIMEOUT=5)


if __name__ == "__main__":
    sys.exit(main())
