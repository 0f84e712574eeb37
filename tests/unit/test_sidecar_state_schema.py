"""The sidecar's postgres state store writes whatsapp_sidecar_state with its own SQL
(whatsapp/sidecar/src/state/postgres.js); its node tests and the benchmark create the
table from whatsapp/sidecar/test/state-schema.sql. Both must match what Django's migration
creates, or the sidecar would pass its tests and fail in production."""

from __future__ import annotations

import re

import pytest
from django.db import connection

from tests.support.paths import ROOT

pytestmark = pytest.mark.django_db

SCHEMA_SQL = ROOT / "whatsapp" / "sidecar" / "test" / "state-schema.sql"
TYPES = {"bigint": "bigint", "text": "text", "timestamptz": "timestamp with time zone"}


def columns_in_sql(table: str) -> dict[str, tuple[str, bool]]:
    body = re.search(rf"CREATE TABLE {table} \((.*?)\n\);", SCHEMA_SQL.read_text(), re.S).group(1)
    out = {}
    for line in body.splitlines():
        words = line.strip().rstrip(",").split()
        if not words or words[0] == "CONSTRAINT":
            continue
        out[words[0]] = (TYPES[words[1]], "NOT NULL" in line or "PRIMARY KEY" in line)
    return out


def test_the_sidecar_state_table_matches_the_sidecars_ddl():
    with connection.cursor() as cur:
        cur.execute("SELECT column_name, data_type, is_nullable FROM information_schema.columns "
                    "WHERE table_name = 'whatsapp_sidecar_state'")
        in_db = {name: (dtype, nullable == "NO") for name, dtype, nullable in cur.fetchall()}
        cur.execute("""
            SELECT array_agg(a.attname ORDER BY k.ord) FROM pg_constraint c
            CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
            JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
            WHERE c.conrelid = 'whatsapp_sidecar_state'::regclass AND c.contype = 'u' GROUP BY c.oid""")
        unique = [row[0] for row in cur.fetchall()]
    assert in_db == columns_in_sql("whatsapp_sidecar_state")
    # The sidecar's upserts are ON CONFLICT (tenant, kind, key): that exact unique constraint.
    assert ["tenant", "kind", "key"] in unique
