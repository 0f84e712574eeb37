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

from django.db import connections
from django.db.models import Model, QuerySet
from django.db.models.query import get_related_populators

# Stand-ins for the parameters while compiling: integers (every lookup here is on an id)
# that no row has, found again in the compiled parameters by value.
_MARKERS = (-7_340_001, -7_340_002, -7_340_003)


class CompiledRead:
    """`build(*params)` returns the queryset; get(*params) runs it, compiled on the first
    call, and returns its first row's object, or None."""

    def __init__(self, build: Callable[..., QuerySet]):
        self.build = build
        self._compiled: tuple | None = None

    def _compile(self, arity: int) -> tuple:
        queryset = self.build(*_MARKERS[:arity])
        compiler = queryset.query.get_compiler(using=queryset.db)
        sql, template = compiler.as_sql()
        positions = [template.index(marker) for marker in _MARKERS[:arity]]
        if sum(value in _MARKERS for value in template) != arity:
            raise ValueError("each parameter must appear exactly once in the compiled query")
        klass_info, select = compiler.klass_info, compiler.select
        fields = klass_info["select_fields"]
        start, end = fields[0], fields[-1] + 1
        init_list = [column[0].target.attname for column in select[start:end]]
        populators = get_related_populators(klass_info, select, queryset.db)
        return (queryset.db, compiler, sql, list(template), positions, klass_info["model"], start, end, init_list,
                populators)

    def get(self, *params) -> Model | None:
        if self._compiled is None:
            self._compiled = self._compile(len(params))
        db, compiler, sql, template, positions, model, start, end, init_list, populators = self._compiled
        values = list(template)
        for position, value in zip(positions, params, strict=True):
            values[position] = value
        with connections[db].cursor() as cursor:
            cursor.execute(sql, values)
            row = cursor.fetchone()
        if row is None:
            return None
        row = next(iter(compiler.results_iter(results=[[row]])))
        obj = model.from_db(db, init_list, row[start:end])
        for populator in populators:
            populator.populate(row, obj)
        for name, position in (compiler.annotation_col_map or {}).items():
            setattr(obj, name, row[position])
        return obj
