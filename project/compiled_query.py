"""A read compiled to SQL once per process and run again with other parameters.

Django compiles a queryset to SQL on every call. For the tasks' hottest read, a message
with its tenant and contact (select_related: 68 columns), compiling cost more CPU than
the query itself: a fifth of the reply task's CPU and a sixth of the send task's (issue 16,
docs/PERFORMANCE.md "Third pass"). CompiledRead compiles the queryset once, with a marker
value where each parameter goes, and then only executes that SQL: rows are turned into
objects by Django's own machinery, as ModelIterable does (the converters of each column,
the select_related populators, the annotations), so the result is what the queryset
itself would return.

It relies on compiler attributes that ModelIterable uses (select, klass_info,
annotation_col_map) and on get_related_populators: internal to Django, pinned in
requirements.txt, and covered by tests/integration/test_compiled_query.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.db import connections
from django.db.models import Model, QuerySet
from django.db.models.query import get_related_populators
from django.db.models.sql.compiler import SQLCompiler

# Stand-ins for the parameters while compiling: integers (every lookup here is on an id)
# that no row has, found again in the compiled parameters by value.
_MARKERS = (-7_340_001, -7_340_002, -7_340_003)


@dataclass(frozen=True)
class _Compiled:
    db: str
    compiler: SQLCompiler
    sql: str
    template: list  # the compiled parameters, markers included
    positions: list[int]  # where each call's parameters go in them
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

    def _compile(self, arity: int) -> _Compiled:
        queryset = self.build(*_MARKERS[:arity])
        compiler = queryset.query.get_compiler(using=queryset.db)
        sql, template = compiler.as_sql()
        if sum(value in _MARKERS for value in template) != arity:
            raise ValueError("each parameter must appear exactly once in the compiled query")
        klass_info, select = compiler.klass_info, compiler.select
        fields = klass_info["select_fields"]
        return _Compiled(
            db=queryset.db, compiler=compiler, sql=sql, template=list(template),
            positions=[template.index(marker) for marker in _MARKERS[:arity]], model=klass_info["model"],
            start=fields[0], end=fields[-1] + 1,
            init_list=[column[0].target.attname for column in select[fields[0]:fields[-1] + 1]],
            populators=get_related_populators(klass_info, select, queryset.db),
        )

    def all(self, *params) -> list[Model]:
        if self._compiled is None:
            self._compiled = self._compile(len(params))
        compiled = self._compiled
        values = list(compiled.template)
        for position, value in zip(compiled.positions, params, strict=True):
            values[position] = value
        with connections[compiled.db].cursor() as cursor:
            cursor.execute(compiled.sql, values)
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
