"""The staff dashboard in the admin: are customers being answered, and if not, why."""

from __future__ import annotations

from django.contrib import admin
from django.template.response import TemplateResponse

from whatsapp.models import Status
from whatsapp.ops.chart import hourly_bars
from whatsapp.ops.summary import pipeline_summary, rate, seconds


def dashboard(request):
    summary = pipeline_summary()
    windows = [
        {
            "w": w,
            "median": seconds(w.median_reply_s),
            "p95": seconds(w.p95_reply_s),
            "failover_rate": rate(w.failover_rate),
            "statuses": sorted({s for statuses in w.by_provider.values() for s in statuses}),
        }
        for w in summary["windows"]
    ]
    for item in windows:
        item["rows"] = [
            (provider, [statuses.get(s, 0) for s in item["statuses"]], sum(statuses.values()))
            for provider, statuses in item["w"].by_provider.items()
        ]
        item["status_labels"] = [Status(s).label if s in Status.values else s for s in item["statuses"]]
    context = {
        **admin.site.each_context(request),
        "title": "Pipeline dashboard",
        "s": summary,
        "windows": windows,
        "oldest_unanswered": seconds(summary["oldest_unanswered_s"]),
        "chart": hourly_bars(summary["hourly"]),
        "day": summary["windows"][-1],
    }
    return TemplateResponse(request, "admin/ops/dashboard.html", context)


# Staff only: the admin's own login and is_staff check.
dashboard_view = admin.site.admin_view(dashboard)
