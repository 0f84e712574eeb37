"""A rolling deploy while customers write (docs/DEPLOY.md): every process kind is restarted
in turn, gracefully, the way systemd does it on a deploy (SIGTERM and a new process;
gunicorn gets HUP and replaces its workers while the old ones finish their requests),
round after round, while webhooks keep arriving and replies go out through the WhatsApp
Web session and Twilio. It prints, counted at the providers' side: answered exactly once,
dead-lettered, lost, answered twice. Lost and twice must be 0.

    .venv/bin/python -m scripts.rolling_restart [--messages 600] [--minutes 8]
"""

from __future__ import annotations

import signal
import sys

from scripts.bench.stack import http_json, wait_until
from scripts.soak import SEND_WORKERS, Soak

# The order of a deploy: migrations ran before; web first, then the workers, the
# lifecycle worker (sidecar and sessions) and beat last.
ORDER = ("web", "ai", *SEND_WORKERS, "baileys", "beat")


class RollingRestart(Soak):
    record_name = "rolling-restart"
    title = "Rolling restart"
    pace = 0.2  # messages keep arriving through several rounds of restarts

    def command(self) -> str:
        return f".venv/bin/python -m scripts.rolling_restart --messages {self.messages}"

    def provider_faults(self) -> None:
        # A deploy, not chaos: the providers behave.
        self.log("providers healthy (no injected faults): only the restarts disturb the flow")

    def chaos(self) -> None:
        restarts = {kind: 0 for kind in ORDER}
        while not self.stop_chaos.is_set():
            for kind in ORDER:
                if self.stop_chaos.wait(4):
                    break
                self.restart(kind)
                restarts[kind] += 1
        self.log(f"graceful restarts: {restarts}")

    def restart(self, kind: str) -> None:
        s = self.stack
        if kind == "web":
            s.procs["web"].send_signal(signal.SIGHUP)  # systemctl reload: new workers, old ones finish
        elif kind == "beat":
            s.stop("beat")
            s.start_beat()
        elif kind == "baileys":
            # The old owner stops its sessions and the sidecar, then releases the lease; the
            # new one takes the lease, starts the sidecar (its spool is on disk) and the
            # health check brings the sessions back.
            s.stop("baileys")
            s.start_worker("baileys", "baileys", 1)
            wait_until(lambda: http_json("GET", f"{s.env['SIDECAR_URL']}/healthz").get("ok"), 30, "the sidecar")
        elif kind == "ai":
            s.stop("ai")
            s.start_worker("ai", "ai,default", 2)
        else:
            s.stop(kind)
            self.start_send_worker(kind)


def main() -> int:
    return RollingRestart.command_line(__doc__, messages=600, minutes=8)


if __name__ == "__main__":
    sys.exit(main())
