"""GET /metrics in Prometheus' text format.

Counters and histograms are recorded by whichever process did the work (web, ai and send
workers). With PROMETHEUS_MULTIPROC_DIR set (the run command sets it for every process
and empties it at start), each process writes its numbers to files there and this view
adds them up; without it, only this process's own numbers are shown. Gauges about the
current state come from the database and Redis at scrape time (whatsapp.ops.collectors).

Access: with METRICS_TOKEN set, `Authorization: Bearer <token>` is required. Without it,
only a client on the loopback interface that did not come through a proxy is served, and
in production (METRICS_REQUIRE_TOKEN) nobody is: there the token is the only way in.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from django.conf import settings
from django.http import HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from whatsapp.inbox.metrics import InboxCollector
from whatsapp.ops import access
from whatsapp.ops.collectors import FAMILIES, PipelineCollector


class ProcessMetrics(Collector):
    """What the processes recorded: summed from the multiprocess directory when there is
    one, else this process's default registry. Families owned by PipelineCollector are
    left out so that no metric appears twice."""

    def collect(self) -> Iterator:
        path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        source = MultiProcessCollector(None, path=path).collect() if path else REGISTRY.collect()
        for family in source:
            if family.name not in FAMILIES:
                yield family


def render_metrics() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ProcessMetrics())
    registry.register(PipelineCollector())
    registry.register(InboxCollector())
    return generate_latest(registry)


def _token_required() -> bool:
    return bool(settings.METRICS_TOKEN or settings.METRICS_REQUIRE_TOKEN)


def _allowed(request) -> bool:
    return access.has_token(request) if _token_required() else access.from_loopback(request)


@never_cache
@require_safe
def metrics(request) -> HttpResponse:
    if not _allowed(request):
        response = HttpResponse("metrics need a bearer token (METRICS_TOKEN)\n", status=401, content_type="text/plain")
        if _token_required():
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(render_metrics(), content_type=CONTENT_TYPE_LATEST)
