"""Many rows inserted at once, as the consumer owes deliveries and the sender records attempts.
On SQLite, one statement whose rows arrive as one JSON parameter: `executemany` steps the statement
once a row, letting the GIL go and taking it back each time, and beside a sender busy on the event
loop each row waited for it (192 attempts took 30 ms to record, 0.16 ms a row). Elsewhere (asyncpg
pipelines its executemany, on the event loop) a plain executemany."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from sqlalchemy import Table, TextClause, insert, text
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession


class RowsInsert:
    """An INSERT of `columns` into `table`, built once; `run` takes the rows as dicts by column."""

    def __init__(self, table: Table, columns: Sequence[str]) -> None:
        self.table = table
        self.columns = tuple(columns)
        picked = ", ".join(f"json_extract(value, '$[{index}]')" for index in range(len(self.columns)))
        self._from_json: TextClause = text(
            f"INSERT INTO {table.name} ({', '.join(self.columns)}) SELECT {picked} FROM json_each(:rows)"
        )
        self._plain = insert(table)
        # The columns' bind processors as the dialect has them (a time as SQLite's UtcDateTime writes it).
        self._processors: dict[str, tuple[Callable[[Any], Any] | None, ...]] = {}

    async def run(self, session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        dialect = session.get_bind().dialect
        if dialect.name != "sqlite":
            await session.execute(self._plain, list(rows))
            return
        processors = self._processors.get(dialect.name) or self._processors_for(dialect)
        pairs = tuple(zip(self.columns, processors, strict=True))
        payload = []
        for row in rows:
            values = []
            for name, process in pairs:
                value = row[name]
                values.append(value if process is None or value is None else process(value))
            payload.append(values)
        await session.execute(self._from_json, {"rows": _json(payload)})

    def _processors_for(self, dialect: Dialect) -> tuple[Callable[[Any], Any] | None, ...]:
        types = [self.table.c[name].type.dialect_impl(dialect) for name in self.columns]
        processors = tuple(type_.bind_processor(dialect) for type_ in types)
        self._processors[dialect.name] = processors
        return processors


def _json(payload: list[list[Any]]) -> str:
    try:
        return orjson.dumps(payload).decode()
    except TypeError:  # a lone surrogate in a receiver's text: escaped instead
        return json.dumps(payload)
