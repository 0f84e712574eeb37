"""A load generator that runs in its own processes: a fixed number of keep-alive
connections, each sending requests back to back (a closed loop), for a fixed time.

Webhook requests are signed before the clock starts, as a load generator such as wrk
replays prepared requests: on a 2-core machine the generator shares the CPU with the
server, and signing each request in the timed loop (about 0.5 ms of CPU a request) was
counted against the webhook and not against the trivial view it is compared with."""

from __future__ import annotations

import http.client
import multiprocessing as mp
import time
import uuid

from scripts.bench.stack import signed_twilio_form

# More signed requests than one connection sends in a second here (about 150); past
# them the worker signs in the loop.
PREPARED_PER_SECOND = 1000


def _webhook_request(port: int, seed: int, n: int) -> tuple[str, bytes, dict]:
    phone = f"+1555{seed:03d}{n % 10000:04d}"
    body, signature = signed_twilio_form(f"http://127.0.0.1:{port}", "bench", "SM" + uuid.uuid4().hex,
                                         phone, "What are your opening hours?")
    return "POST", body, {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}


def _worker(port: int, path: str, kind: str, seconds: float, out: mp.Queue, seed: int, ready) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    latencies: list[float] = []
    errors = 0
    prepared = [_webhook_request(port, seed, n) for n in range(int(seconds * PREPARED_PER_SECOND))] \
        if kind == "webhook" else []
    ready.wait()  # every connection starts together, once all are prepared
    began, cpu_began = time.monotonic(), time.process_time()
    deadline = began + seconds
    n = 0
    while time.monotonic() < deadline:
        n += 1
        if kind == "webhook":
            method, body, headers = prepared[n - 1] if n <= len(prepared) else _webhook_request(port, seed, n)
        else:
            method, body, headers = "GET", None, {}
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
    out.put({"latencies": latencies, "errors": errors, "seconds": time.monotonic() - began,
             "cpu_seconds": time.process_time() - cpu_began})


def run_load(port: int, path: str, kind: str, seconds: float, connections: int) -> dict:
    """Returns requests per second, latency percentiles (ms) and the error count."""
    from scripts.bench.stack import percentile

    out: mp.Queue = mp.Queue()
    ready = mp.Barrier(connections)
    procs = [mp.Process(target=_worker, args=(port, path, kind, seconds, out, i, ready)) for i in range(connections)]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    latencies = [lat for result in results for lat in result["latencies"]]
    # Each connection's own loop time (its requests were prepared before it started).
    elapsed = max(result["seconds"] for result in results)
    return {
        "requests": len(latencies),
        "errors": sum(result["errors"] for result in results),
        "client_cpu_seconds": sum(result["cpu_seconds"] for result in results),  # the timed loops only
        "rps": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "latencies": latencies,
        "seconds": elapsed,
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
