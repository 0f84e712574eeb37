"""Looking for a customer everywhere we keep data: every column of every table, every
file under a directory, every key and queued task in Redis."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from django.db import connection


def tables_holding(needles: list[str]) -> list[str]:
    """'table.column' for every column (any type, cast to text) that contains a needle."""
    found = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            columns = [c.name for c in connection.introspection.get_table_description(cursor, table)]
            quote = connection.ops.quote_name
            for column in columns:
                where = " OR ".join(f"CAST({quote(column)} AS TEXT) LIKE %s" for _ in needles)
                cursor.execute(f"SELECT COUNT(*) FROM {quote(table)} WHERE {where}", [f"%{n}%" for n in needles])
                if cursor.fetchone()[0]:
                    found.append(f"{table}.{column}")
    return found


def files_holding(root: Path, needles: list[str]) -> list[str]:
    """Files under root whose name or content contains a needle. The sandbox transport's
    own directory (`sandbox/`: what the simulated phones received, what WhatsApp's
    simulated servers hold) stands for the customer's phone, out of reach of an erasure on
    our side; a real deployment has no such directory."""
    found = []
    world = Path(root) / "sandbox"
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file() and world not in p.parents):
        try:
            content = path.read_bytes()
        except FileNotFoundError:
            continue  # a temporary file renamed meanwhile (the sidecar writes atomically): seen under its new name next time
        if any(n.encode() in content or n in path.name for n in needles):
            found.append(str(path.relative_to(root)))
    return found


def redis_holding(client, needles: list[str]) -> list[str]:
    """Redis keys whose name or value contains a needle; queued Celery messages are
    decoded (kombu stores the task body base64-encoded)."""
    found = []
    for key in client.scan_iter():
        kind = client.type(key).decode()
        values: list[bytes] = [key]
        if kind == "string":
            values.append(client.get(key) or b"")
        elif kind == "list":
            values += client.lrange(key, 0, -1)
        elif kind == "hash":
            values += [b"%s=%s" % pair for pair in client.hgetall(key).items()]
        elif kind in ("set", "zset"):
            values += list(client.smembers(key)) if kind == "set" else client.zrange(key, 0, -1)
        for value in list(values):
            try:
                body = json.loads(value).get("body")
                values.append(base64.b64decode(body))
            except (ValueError, AttributeError, TypeError):
                pass
        if any(n.encode() in value for value in values for n in needles):
            found.append(key.decode())
    return found
