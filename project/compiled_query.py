"""Reads and updates compiled to SQL once per process and run again with other parameters.

Django compiles a queryset to SQL on every call. For the tasks' hottest read, a message
with its tenant and contact (select_related: 68 columns), compiling cost more CPU than
the query itself: a fifth of the reply task's CPU and a sixth of the send task's (issue 16,
docs/PERFORMANCE.md "Third pass"); the send task's claim, a conditional UPDATE, cost a
fifth of that task ("Fourth pass"). CompiledRead and CompiledUpdate compile the queryset
once, with a marker value where each parameter goes, and then only execute that SQL:
rows are turned into objects by Django's own machinery, as ModelIterable does (the
converters of each column, the select_related populators, the annotations), so the result
is what the queryset itself would return; an update runs the statement QuerySet.update
would run and returns its row count.

It relies on compiler attributes that ModelIterable uses (select, klass_info,
annotation_col_map) and on get_related_populators: internal to Django, pinned in
requirements.txt, and covered by tests/integration/test_compiled_query.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import connections, models, router, transaction
from django.db.models import Model, QuerySet
from django.db.models.query import get_related_populators
from django.db.models.sql import UpdateQuery
from django.db.models.sql.compiler import SQLCompiler

# Stand-ins for the parameters while compiling, by the parameter's type: values no row
# has, found again in the compiled parameters by value, as the database receives them
# (the field's own conversion: SQLite stores a datetime as text, a duration as an integer).
_MARKERS: dict[type, tuple] = {
    int: (-7_340_001, -7_340_002, -7_340_003),
    datetime: tuple(datetime(1901, 2, 3, 4, 5, 6, n, tzinfo=UTC) for n in (1, 2, 3)),
    timedelta: tuple(timedelta(days=7_340, microseconds=n) for n in (1, 2, 3)),
}
_AS_SENT: dict[type, Callable] = {
    int: lambda value, connection: value,
    datetime: models.DateTimeField().get_db_prep_value,
    timedelta: models.DurationField().get_db_prep_value,
}


@dataclass(frozen=True)
class _Slots:
    """Where each call's parameters go in the compiled parameters, and how each is sent."""

    template: list  # the compiled parameters, markers included
    positions: list[int]
    types: tuple[type, ...]

    @classmethod
    def markers(cls, params: tuple) -> tuple:
        types = _kinds(params)
        return tuple(_MARKERS[t][types[:i].count(t)] for i, t in enumerate(types))

    @classmethod
    def find(cls, template, markers: tuple, connection) -> _Slots:
        kinds = _kinds(markers)
        sent = [_AS_SENT[kind](m, connection) for kind, m in zip(kinds, markers, strict=True)]
        if any(sum(value == marker for value in template) != 1 for marker in sent):
            raise ValueError("each parameter must appear exactly once in the compiled query")
        return cls(list(template), [list(template).index(marker) for marker in sent], kinds)

    def values(self, params: tuple, connection) -> list:
        if _kinds(params) != self.types:
            raise TypeError(f"compiled for parameters {self.types}, called with {params!r}")
        values = list(self.template)
        for position, kind, value in zip(self.positions, self.types, params, strict=True):
            values[position] = _AS_SENT[kind](value, connection)
        return values


def _kinds(params: tuple) -> tuple[type, ...]:
    """Each parameter's kind: int, datetime or timedelta (a subclass counts as its base,
    a bool and None do not: they compile to other SQL)."""
    kinds = tuple(next((kind for kind in _MARKERS if isinstance(value, kind) and not isinstance(value, bool)), None)
                  for value in params)
    if None in kinds:
        raise TypeError(f"compiled queries take int, datetime and timedelta parameters, not {params!r}")
    return kinds


@dataclass(frozen=True)
class _Compiled:
    db: str
    compiler: SQLCompiler
    sql: str
    slots: _Slots
    model: type[Model]
    start: int  # the model's own columns in a row: row[start:end]
    end: int
    init_list: list[str]
    populators: list  # select_related objects, filled from the same row


class CompiledRead:
    """`build(*params)` returns the queryset; all(*params) runs it, compiled on the first
    call, and returns its objects; get(*params) the first, or None."""

    def __init__(self, build: Callable[..., QuerySet]):
        self.build = build
        self._compiled: _Compiled | None = None

    def _compile(self, params: tuple) -> _Compiled:
        markers = _Slots.markers(params)
        queryset = self.build(*markers)
        compiler = queryset.query.get_compiler(using=queryset.db)
        sql, template = compiler.as_sql()
        klass_info, select = compiler.klass_info, compiler.select
        fields = klass_info["select_fields"]
        return _Compiled(
            db=queryset.db, compiler=compiler, sql=sql, slots=_Slots.find(template, markers, connections[queryset.db]),
            model=klass_info["model"], start=fields[0], end=fields[-1] + 1,
            init_list=[column[0].target.attname for column in select[fields[0]:fields[-1] + 1]],
            populators=get_related_populators(klass_info, select, queryset.db),
        )

    def all(self, *params) -> list[Model]:
        if self._compiled is None:
            self._compiled = self._compile(params)
        compiled = self._compiled
        connection = connections[compiled.db]
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, compiled.slots.values(params, connection))
            rows = cursor.fetchall()
        return [self._object(compiled, row) for row in compiled.compiler.results_iter(results=[rows])]

    def get(self, *params) -> Model | None:
        found = self.all(*params)
        return found[0] if found else None

    @staticmethod
    def _object(compiled: _Compiled, row) -> Model:
        obj = compiled.model.from_db(compiled.db, compiled.init_list, row[compiled.start:compiled.end])
        for populator in compiled.populators:
            populator.populate(row, obj)
        for name, position in (compiled.compiler.annotation_col_map or {}).items():
            setattr(obj, name, row[position])
        return obj


class CompiledUpdate:
    """`build(*params)` returns (queryset, values): run(*params) performs
    `queryset.update(**values)`, compiled on the first call, and returns the number of
    rows it changed. For a plain UPDATE of one model's own columns (no related updates)."""

    def __init__(self, build: Callable[..., tuple[QuerySet, dict]]):
        self.build = build
        self._compiled: tuple[str, str, _Slots] | None = None

    def _compile(self, params: tuple) -> tuple[str, str, _Slots]:
        markers = _Slots.markers(params)
        queryset, values = self.build(*markers)
        if queryset.query.is_sliced or queryset.query.order_by:
            raise ValueError("a compiled update takes a plain filtered queryset")
        db = queryset._db or router.db_for_write(queryset.model)
        # What QuerySet.update does before it executes (Django 5.2).
        query = queryset.query.chain(UpdateQuery)
        query.add_update_values(values)
        query.clear_select_clause()
        if query.related_updates:
            raise ValueError("a compiled update changes one table")
        sql, template = query.get_compiler(db).as_sql()
        return db, sql, _Slots.find(template, markers, connections[db])

    def run(self, *params) -> int:
        if self._compiled is None:
            self._compiled = self._compile(params)
        db, sql, slots = self._compiled
        connection = connections[db]
        # As QuerySet.update: a failed statement inside an atomic block rolls the block back.
        with transaction.mark_for_rollback_on_error(using=db), connection.cursor() as cursor:
            cursor.execute(sql, slots.values(params, connection))
            return cursor.rowcount
