"""Flower's configuration file (Flower reads ./flowerconfig.py by default; it runs inside
`celery -A project flower`, so Django settings are already loaded).

- Login: HTTP basic auth from FLOWER_BASIC_AUTH ("user:password", or FLOWER_BASIC_AUTH_FILE).
  In production Flower refuses to start without it; `make run` generates one. Flower's
  own /metrics and /healthcheck skip authentication, which is why the Procfile binds it
  to 127.0.0.1: put a proxy with TLS in front to reach it from elsewhere.
- Queues: Flower's broker page lists only the queues that live workers consume, so a
  queue with no worker (the very one piling up) would be missing; we list every
  configured queue, `baileys` included.
"""

from __future__ import annotations

import sys

from django.conf import settings
from flower.views import BaseHandler

if settings.FLOWER_BASIC_AUTH:
    if ":" not in settings.FLOWER_BASIC_AUTH:
        sys.exit("FLOWER_BASIC_AUTH must look like user:password")
    basic_auth = [settings.FLOWER_BASIC_AUTH]
elif settings.PRODUCTION:
    sys.exit("Flower refuses to start in production without a login: set FLOWER_BASIC_AUTH=user:password")
else:
    print("WARNING: Flower runs without a login (set FLOWER_BASIC_AUTH=user:password)", file=sys.stderr)

_active_queue_names = BaseHandler.get_active_queue_names


def _every_queue_name(self) -> list[str]:
    configured = {q.name for q in self.capp.conf.task_queues or [] if q.name}
    return sorted(set(_active_queue_names(self)) | configured)


BaseHandler.get_active_queue_names = _every_queue_name
