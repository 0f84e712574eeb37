"""A Twilio inbound message stored in ONE PostgreSQL statement: the contact upserted and
the message inserted unless its MessageSid is already stored, atomically and durably (the
statement commits on its own), in one round trip instead of seven (issue 16's profile:
duplicate check, BEGIN, contact select, savepoint, contact insert/update, message insert,
COMMIT).

    WITH dup AS (SELECT 1 FROM message WHERE provider = .. AND provider_message_id = ..),
         c AS (INSERT INTO contact .. SELECT .. WHERE NOT EXISTS (SELECT 1 FROM dup)
               ON CONFLICT (tenant_id, phone) WHERE NOT (phone = '') DO UPDATE SET ..
               RETURNING id)
    INSERT INTO message (.., contact_id, ..) SELECT .., c.id, .. FROM c
    ON CONFLICT DO NOTHING RETURNING id

No row back means the message was stored before (a re-delivered webhook): then neither
the contact nor the message is touched. Two deliveries racing both pass `dup`; the unique
index makes the second one's INSERT do nothing (it waits for the first to commit).

The column lists come from the models (every concrete field, values prepared by the
fields themselves, defaults included), so a column added later with a Python default is
written without touching this module. Twilio's contacts are known by phone only (no LID),
so the contact rule is the phone's unique index: the name is updated when Twilio sends
one, and the message opens Twilio's 24-hour window (last_twilio_inbound_at)."""

from __future__ import annotations

import contextlib
import functools
import logging

import psycopg
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection
from django.db.models import Model

from whatsapp.models import Contact, Message

log = logging.getLogger("whatsapp.inbound")

_CONTACT_UPDATE = (
    'ON CONFLICT ("tenant_id", "phone") WHERE NOT ("phone" = \'\') DO UPDATE SET '
    '"name" = CASE WHEN EXCLUDED."name" <> \'\' THEN EXCLUDED."name" ELSE {table}."name" END, '
    '"last_twilio_inbound_at" = EXCLUDED."last_twilio_inbound_at" '
    'RETURNING "id"'
)


# A column whose value is computed for each row: a callable default (uuid4, now) or an
# auto_now / auto_now_add timestamp.
_PER_ROW = object()


@functools.cache
def _layout(model: type[Model], replace: tuple[tuple[str, str], ...]) -> tuple[str, str, tuple]:
    """Quoted column list, a SELECT list of typed placeholders (or the SQL in `replace`
    for a column), and for each placeholder its field and the prepared value it takes
    when the row does not give one (_PER_ROW when computed per row), for an INSERT of a
    `model` row as Django's save() would write it. Built once per process: building it,
    then preparing every default again per request, was 15% of a webhook's CPU."""
    qn = connection.ops.quote_name
    replaced = dict(replace)
    columns, select, plan = [], [], []
    for field in model._meta.concrete_fields:
        if field.primary_key or getattr(field, "generated", False):
            continue
        columns.append(qn(field.column))
        if field.column in replaced:
            select.append(replaced[field.column])
            continue
        # Typed: in INSERT .. SELECT a bare literal would be read as text.
        select.append(f"CAST(%s AS {field.cast_db_type(connection)})")
        per_row = _default_is_callable(field) or getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)
        plan.append((field, _PER_ROW if per_row else field.get_db_prep_save(field.get_default(), connection)))
    return ", ".join(columns), ", ".join(select), tuple(plan)


def _values(plan: tuple, given: dict, now) -> list:
    """The row's values in placeholder order: `given` (by attname), else the default."""
    values = []
    for field, default in plan:
        if field.attname in given:
            value = given[field.attname]
        elif default is not _PER_ROW:
            values.append(default)
            continue
        elif _default_is_callable(field):
            value = field.get_default()
        else:
            value = now  # auto_now / auto_now_add
        values.append(field.get_db_prep_save(value, connection))
    return values


def _default_is_callable(field) -> bool:
    # A field without a default holds the NOT_PROVIDED class, which is callable too.
    return field.has_default() and callable(field.default)


_CONTACT = (Contact, ())
_MESSAGE = (Message, (("contact_id", "c.id"),))


@functools.cache
def _sql() -> str:
    contact_table = connection.ops.quote_name(Contact._meta.db_table)
    message_table = connection.ops.quote_name(Message._meta.db_table)
    c_cols, c_select, _ = _layout(*_CONTACT)
    m_cols, m_select, _ = _layout(*_MESSAGE)
    return (
        f"WITH dup AS (SELECT 1 FROM {message_table} WHERE provider = %s AND provider_message_id = %s), "
        f"c AS (INSERT INTO {contact_table} ({c_cols}) SELECT {c_select} WHERE NOT EXISTS (SELECT 1 FROM dup) "
        f"{_CONTACT_UPDATE.format(table=contact_table)}) "
        f"INSERT INTO {message_table} ({m_cols}) SELECT {m_select} FROM c "
        'ON CONFLICT DO NOTHING RETURNING "id", "contact_id"'
    )


def store(contact: dict, message: dict, now) -> tuple[int, int] | None:
    """INSERT the message (a dict of Message attnames to values; the rest take their
    defaults) and upsert its sender (a dict of Contact attnames), unless a message with the
    same provider and provider_message_id exists. `now` fills the auto_now columns.
    Returns (message id, contact id) when stored, None for a message stored before."""
    params = [message["provider"], message["provider_message_id"],
              *_values(_layout(*_CONTACT)[2], contact, now), *_values(_layout(*_MESSAGE)[2], message, now)]
    row = _run(_sql(), params)
    return tuple(row) if row else None


def _run(sql: str, params: list):
    """The statement, on a connection found broken only when it fails. Django's health
    check (CONN_HEALTH_CHECKS) would ask PostgreSQL `SELECT 1` first on every request, a
    round trip and a transaction for each webhook (4% of its CPU, issue 16); here a
    connection that died since the last request (a PostgreSQL restart) fails the
    statement, which runs once more on a new connection. Safe to repeat: if the first try
    was stored after all, the second finds it (the MessageSid is unique) and the message
    is treated as a re-delivery; the reconciler hands it to the bot."""
    execute = _execute_prepared if settings.DB_PREPARED_STATEMENTS else _execute
    if connection.in_atomic_block or connection.health_check_done:
        return execute(sql, params)
    connection.health_check_done = True
    try:
        return execute(sql, params)
    except (OperationalError, InterfaceError):
        if connection.is_usable():
            raise  # the statement failed, not the connection
        log.warning("the database connection was lost; storing the webhook on a new one")
        connection.close()
        return execute(sql, params)


def _execute(sql: str, params: list):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def _execute_prepared(sql: str, params: list):
    # connection.cursor() opens the connection if needed (the health check is _run's
    # concern); the wrapper's debug_sql keeps the statement in connection.queries when
    # DEBUG logs them.
    with connection.cursor() as wrapper:
        logged = wrapper.debug_sql(sql, params) if connection.queries_logged else contextlib.nullcontext()
        with logged, connection.wrap_database_errors, psycopg.Cursor(wrapper.cursor.connection) as cursor:
            cursor.execute(sql, params, prepare=True)
            return cursor.fetchone()
