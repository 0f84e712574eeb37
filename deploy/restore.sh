#!/usr/bin/env bash
# Restore a backup made by deploy/backup.sh onto this host, with the lifecycle worker
# stopped (systemctl stop whatsapp-worker_baileys.target): the database into DATABASE_URL,
# the sidecar's data into SIDECAR_DATA_DIR. Starting the lifecycle worker afterwards
# brings every session back paired: no QR code to scan again.
#
#   deploy/restore.sh DB_DUMP SIDECAR_TARBALL
set -euo pipefail
dump="${1:?usage: deploy/restore.sh DB_DUMP SIDECAR_TARBALL}"
tarball="${2:?usage: deploy/restore.sh DB_DUMP SIDECAR_TARBALL}"
: "${DATABASE_URL:?DATABASE_URL must be set (postgres://...)}"
: "${SIDECAR_DATA_DIR:?SIDECAR_DATA_DIR must be set}"
pg_restore --clean --if-exists --no-owner --no-privileges --single-transaction --dbname "$DATABASE_URL" "$dump"
rm -rf "$SIDECAR_DATA_DIR.restoring"
mkdir -p "$SIDECAR_DATA_DIR.restoring"
tar -C "$SIDECAR_DATA_DIR.restoring" -xzf "$tarball"
# Swap in one rename, so an interrupted restore never leaves half a session directory.
rm -rf "$SIDECAR_DATA_DIR.old"
[ -e "$SIDECAR_DATA_DIR" ] && mv "$SIDECAR_DATA_DIR" "$SIDECAR_DATA_DIR.old"
mv "$SIDECAR_DATA_DIR.restoring" "$SIDECAR_DATA_DIR"
rm -rf "$SIDECAR_DATA_DIR.old"
echo "restored $dump into the database and $tarball into $SIDECAR_DATA_DIR"
