"""A real `celery worker` process for tests (the start_worker fixture starts them)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.support.paths import ROOT
from tests.support.waiting import wait_for


class Worker:
    """A real `celery worker` process (prefork pool) with its own environment."""

    def __init__(self, env: dict, queues: str, concurrency: int, logfile: Path, beat: bool = False,
                 wait_ready: bool = True):
        cmd = [sys.executable, "-m", "celery", "-A", "project", "worker", "-Q", queues, "-c", str(concurrency),
               "-P", "prefork", "-l", "INFO", "--without-gossip", "--without-mingle", "-n", f"test-{queues}@%h"]
        if beat:
            cmd += ["-B", "-s", str(logfile.with_suffix(".beat"))]
        self.logfile = logfile
        self.log = open(logfile, "w")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        if not wait_ready:
            return
        wait_for(lambda: "ready." in self.output() or self.proc.poll() is not None, 30, message="worker ready")
        if self.proc.poll() is not None:
            raise RuntimeError("worker did not start:\n" + self.output())

    def output(self) -> str:
        return self.logfile.read_text() if self.logfile.exists() else ""

    def children(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()
