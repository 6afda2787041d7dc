"""Many rows inserted at once: the inbox rows of a consumer's batch, the deliveries the delivery
service owes and the attempts its sender records. On SQLite, one statement whose rows arrive as
one JSON parameter: `executemany` steps the statement once a row, letting the GIL go and taking it
back each time, and beside a sender busy on the event loop each row waited for it (192 attempts
took 30 ms to record, 0.16 ms a row). On PostgreSQL too, as objects typed by the table's own row
type (`json_populate_recordset`): asyncpg pipelines an executemany, but the server still runs the
statement once a row (10 % of the delivery rate). A text with a NUL, which PostgreSQL's json cannot
hold, goes the executemany way (and fails there, as PostgreSQL's text cannot hold it either).

Rows are tuples in `columns` order (a dict a row, read back column by column, cost the loop that
sends the webhooks a few µs a delivery), and values the same for every row of a run (`constants`:
a delivery's status and times as it is owed) are bound once, not carried and converted in each.
The statement is built once: `insert(table).values(rows)` is a new statement, compiled anew, for
each number of rows (the delivery consumer's inbox: 125 µs an event).

`one_of(column, name, item_type)` is the same idea for a list of values in a WHERE: one parameter,
so the statement's text does not depend on the list's length. An expanding `IN` is a new text for
each length: asyncpg prepared each anew (a round trip and a plan more; the sender's lease, its
`delivered` update and its leases' end were a new statement nearly every round, 60–70 of each in a
burst) and its cache of 100 kept none for long."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from sqlalchemy import Boolean, ColumnElement, Table, Text, TextClause, bindparam, insert, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.type_api import TypeEngine
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import TypeDecorator

Processor = Callable[[Any], Any]


class RowsInsert:
    """An INSERT into `table` of rows of `columns`, each with `constants` added, built once."""

    def __init__(self, table: Table, columns: Sequence[str], constants: Sequence[str] = ()) -> None:
        self.table = table
        self.columns = tuple(columns)
        self.constants = tuple(constants)
        picked = [f"json_extract(value, '$[{index}]')" for index in range(len(self.columns))]
        picked += [f":{name}" for name in self.constants]
        self._from_json: TextClause = text(
            f"INSERT INTO {table.name} ({', '.join(self.columns + self.constants)}) "
            f"SELECT {', '.join(picked)} FROM json_each(:rows)"
        )
        self._plain = insert(table)
        # PostgreSQL: the rows as one JSON array of objects, typed by the table's own row type.
        self._from_records: TextClause = text(
            f"INSERT INTO {table.name} ({', '.join(self.columns + self.constants)}) "
            f"SELECT {', '.join([*self.columns, *(f':{name}' for name in self.constants)])} "
            f"FROM json_populate_recordset(NULL::{table.name}, CAST(:rows AS json))"
        ).bindparams(*(bindparam(name, type_=table.c[name].type) for name in self.constants))
        # The columns' bind processors as the dialect has them (a time as SQLite's UtcDateTime
        # writes it): for the varying columns, by position, only those that have one.
        self._processors: dict[str, tuple[tuple[tuple[int, Processor], ...], dict[str, Processor]]] = {}

    async def run(self, session: AsyncSession, rows: Sequence[Sequence[Any]], **constants: Any) -> None:
        if not rows:
            return
        self._check(constants)
        dialect = session.get_bind().dialect
        if dialect.name == "postgresql":
            records = _records(self.columns, rows)
            if records is not None:
                await session.execute(self._from_records, {"rows": records, **constants})
                return
        if dialect.name != "sqlite":
            await session.execute(
                self._plain, [dict(zip(self.columns, row, strict=True), **constants) for row in rows]
            )
            return
        await session.execute(self._from_json, self.sqlite_parameters(dialect, rows, **constants))

    def sqlite_statement(self) -> str:
        """The SQLite statement's text, for a caller that runs it without SQLAlchemy (with
        `sqlite_parameters`; shared/sqlite_driver.py's `on_connection_thread`)."""
        return self._from_json.text

    def sqlite_parameters(
        self, dialect: Dialect, rows: Sequence[Sequence[Any]], **constants: Any
    ) -> dict[str, Any]:
        """The SQLite statement's parameters: the rows as one JSON array, each value and constant as
        its column writes it."""
        self._check(constants)
        varying, fixed = self._processors.get(dialect.name) or self._processors_for(dialect)
        payload: Sequence[Sequence[Any]] = rows
        if varying:
            converted = []
            for row in rows:
                values = list(row)
                for index, process in varying:
                    if values[index] is not None:
                        values[index] = process(values[index])
                converted.append(values)
            payload = converted
        parameters = {
            name: value if value is None or name not in fixed else fixed[name](value)
            for name, value in constants.items()
        }
        return {"rows": _json(payload), **parameters}

    def _check(self, constants: dict[str, Any]) -> None:
        if constants.keys() != set(self.constants):
            raise TypeError(f"{self.table.name}: constants {sorted(constants)} for {sorted(self.constants)}")

    def _processors_for(
        self, dialect: Dialect
    ) -> tuple[tuple[tuple[int, Processor], ...], dict[str, Processor]]:
        def processor(name: str) -> Processor | None:
            return self.table.c[name].type.dialect_impl(dialect).bind_processor(dialect)

        varying = tuple(
            (index, process)
            for index, name in enumerate(self.columns)
            if (process := processor(name)) is not None
        )
        fixed = {name: process for name in self.constants if (process := processor(name)) is not None}
        self._processors[dialect.name] = (varying, fixed)
        return varying, fixed


def _json(payload: Sequence[Sequence[Any]]) -> str:
    try:
        return orjson.dumps(payload).decode()
    except TypeError:  # a lone surrogate in a receiver's text: escaped instead
        return json.dumps(payload)


def _records(columns: tuple[str, ...], rows: Sequence[Sequence[Any]]) -> str | None:
    """The rows as JSON objects by column (a time without an offset is UTC, as asyncpg writes it),
    or None where PostgreSQL's json cannot carry them: a NUL in a text, a lone surrogate."""
    objects = [dict(zip(columns, row, strict=True)) for row in rows]
    try:
        records = orjson.dumps(objects, option=orjson.OPT_NAIVE_UTC)
    except TypeError:
        return None
    return None if b"\\u0000" in records else records.decode()


class ValueList(TypeDecorator[list[Any]]):
    """A list bound as one parameter: a PostgreSQL array of `item_type`, elsewhere JSON text."""

    impl = Text
    cache_ok = True

    def __init__(self, item_type: TypeEngine[Any]) -> None:
        super().__init__()
        self.item_type = item_type

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.ARRAY(self.item_type))
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        return list(value) if dialect.name == "postgresql" else _json(list(value))


class OneOf(ColumnElement[bool]):
    """`column` is one of the list bound to `parameter` (see `one_of`)."""

    type = Boolean()
    inherit_cache = True
    _is_implicitly_boolean = True  # a condition as it is: no `= 1` where booleans are integers
    _traverse_internals = [
        ("column", InternalTraversal.dp_clauseelement),
        ("parameter", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, column: ColumnElement[Any], parameter: BindParameter[Any]) -> None:
        self.column = column
        self.parameter = parameter


@compiles(OneOf, "postgresql")
def _one_of_array(element: OneOf, compiler: SQLCompiler, **kw: Any) -> str:
    return f"({compiler.process(element.column, **kw)} = ANY ({compiler.process(element.parameter, **kw)}))"


@compiles(OneOf)
def _one_of_json(element: OneOf, compiler: SQLCompiler, **kw: Any) -> str:
    column, values = compiler.process(element.column, **kw), compiler.process(element.parameter, **kw)
    return f"({column} IN (SELECT value FROM json_each({values})))"


def one_of(column: ColumnElement[Any], name: str, item_type: TypeEngine[Any]) -> OneOf:
    """`column IN (the list bound to name)`, one statement text for lists of any length
    (PostgreSQL: `= ANY(array)`; SQLite: the list as JSON, `IN (SELECT value FROM json_each(…))`)."""
    return OneOf(column, bindparam(name, type_=ValueList(item_type)))
