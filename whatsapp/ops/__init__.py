"""Operations: /metrics, /healthz and /readyz, worker heartbeats, the staff dashboard
and the numbers behind it (also printed by `manage.py pipeline_status`)."""
