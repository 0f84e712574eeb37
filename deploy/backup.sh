#!/usr/bin/env bash
# Back up what this system cannot rebuild: the PostgreSQL database (tenants, messages,
# dead letters) and the sidecar's data directory (each WhatsApp Web session's credentials
# and signal keys, the idempotency records, the inbound spool). Everything else is code
# or settings. Run it from the host's environment (e.g. `set -a; . /etc/whatsapp/env`).
#
#   deploy/backup.sh DEST_DIR        -> DEST_DIR/db-<UTC>.dump, DEST_DIR/sidecar-<UTC>.tar.gz
#
# The sidecar writes every file atomically (write, then rename), so each file in the
# archive is whole. For one consistent instant, stop the lifecycle worker for the seconds
# tar takes: WhatsApp replays what arrives meanwhile and the spool keeps the rest.
set -euo pipefail
dest="${1:?usage: deploy/backup.sh DEST_DIR}"
: "${DATABASE_URL:?DATABASE_URL must be set (postgres://...)}"
: "${SIDECAR_DATA_DIR:?SIDECAR_DATA_DIR must be set}"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$dest"
umask 077  # the archives hold secrets: WhatsApp credentials and customer messages
pg_dump --format=custom --no-owner --no-privileges --file "$dest/db-$stamp.dump" "$DATABASE_URL"
tar -C "$SIDECAR_DATA_DIR" -czf "$dest/sidecar-$stamp.tar.gz" .
echo "$dest/db-$stamp.dump"
echo "$dest/sidecar-$stamp.tar.gz"
