"""gunicorn's settings (the Procfile passes `-c python:project.gunicorn`): its own lines,
start-up, worker exits and the access log, go through the project's formatters, so
production logs are JSON lines with phone numbers masked like every other process's."""

from __future__ import annotations

import os

_production = os.environ.get("DJANGO_ENV") == "production"
_format = os.environ.get("LOG_FORMAT") or ("json" if _production else "text")
_formatter = "project.logging.JsonFormatter" if _format == "json" else "project.logging.TextFormatter"

accesslog = "-"
# Client, request line, status, bytes, duration: no headers (they carry signatures).
access_log_format = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms'
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"project": {"()": _formatter}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "project", "stream": "ext://sys.stdout"}},
    "root": {"level": "INFO", "handlers": ["console"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["console"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False},
    },
}
