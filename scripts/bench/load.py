"""A load generator that runs in its own processes: a fixed number of keep-alive
connections, each sending requests back to back (a closed loop), for a fixed time."""

from __future__ import annotations

import http.client
import multiprocessing as mp
import time
import uuid

from scripts.bench.stack import signed_twilio_form


def _worker(port: int, path: str, kind: str, seconds: float, out: mp.Queue, seed: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        n += 1
        if kind == "webhook":
            phone = f"+1555{seed:03d}{n % 10000:04d}"
            body, signature = signed_twilio_form(f"http://127.0.0.1:{port}", "bench", "SM" + uuid.uuid4().hex,
                                                 phone, "What are your opening hours?")
            headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
            method = "POST"
        else:
            body, headers, method = None, {}, "GET"
        started = time.perf_counter()
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            ok = response.status == 200
        except (OSError, http.client.HTTPException):
            ok = False
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        elapsed = time.perf_counter() - started
        if ok:
            latencies.append(elapsed)
        else:
            errors += 1
    out.put((latencies, errors))


def run_load(port: int, path: str, kind: str, seconds: float, connections: int) -> dict:
    """Returns requests per second, latency percentiles (ms) and the error count."""
    from scripts.bench.stack import percentile

    out: mp.Queue = mp.Queue()
    procs = [mp.Process(target=_worker, args=(port, path, kind, seconds, out, i)) for i in range(connections)]
    started = time.perf_counter()
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    wall = time.perf_counter() - started
    latencies = [lat for lats, _ in results for lat in lats]
    return {
        "requests": len(latencies),
        "errors": sum(e for _, e in results),
        "rps": len(latencies) / min(wall, seconds + 0.5),
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "latencies": latencies,
        "seconds": min(wall, seconds + 0.5),
    }


def combine(runs: list[dict]) -> dict:
    """Several slices of the same load as one: requests over the summed time, percentiles
    of all latencies together."""
    from scripts.bench.stack import percentile

    latencies = [lat for run in runs for lat in run["latencies"]]
    seconds = sum(run["seconds"] for run in runs)
    return {
        "requests": len(latencies),
        "errors": sum(run["errors"] for run in runs),
        "rps": len(latencies) / seconds,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "seconds": seconds,
    }
