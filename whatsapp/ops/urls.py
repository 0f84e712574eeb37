"""Ops endpoints, included at the site root by project/urls.py."""

from __future__ import annotations

from django.urls import path

from whatsapp.ops import health, metrics_view
from whatsapp.ops.dashboard import dashboard_view

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics_view.metrics, name="metrics"),
    # Before the admin's catch-all, so it lives under /admin/ beside the models.
    path("admin/ops/", dashboard_view, name="ops-dashboard"),
]
