"""SQLAlchemy's aiosqlite driver, with each statement one trip to the connection's thread.

Through SQLAlchemy's own adapter a statement is four trips to aiosqlite's thread: make a cursor,
execute, fetch the rows, close the cursor. Each trip ends on the event loop, behind whatever else
is ready there, and then waits for the GIL: beside a busy loop (the delivery sender's attempts)
a trip took a median 0.2 ms and a tenth of them over 2.9 ms, and the sender's round (seven
statements, 30 ms) spent about half of its time outside SQLite. Here the cursor is made, run,
read and closed on the thread in one call; the rows come back with its description, row count
and last row id. Errors
are sqlite3's, raised as before and translated by SQLAlchemy as before. Server-side cursors keep
the adapter's own (they fetch as they go).

`make_engine` (shared/db.py) builds every SQLite engine on this driver: `sqlite+cradle_aiosqlite`.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
    SQLiteDialect_aiosqlite,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.util import EMPTY_DICT

DRIVER = "cradle_aiosqlite"
T = TypeVar("T")


def _run(
    connection: sqlite3.Connection, operation: str, parameters: Any, many: bool
) -> tuple[Any, int, int | None, list[Any] | None]:
    """On the connection's thread: the whole statement, and what SQLAlchemy reads of its cursor."""
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else None
        return description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A buffered cursor whose statement is one trip to aiosqlite's thread (no aiosqlite cursor is
    kept: what SQLAlchemy asks of one afterwards is kept here)."""

    __slots__ = ("_description", "_rowcount", "_lastrowid")

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> Any:
        return self._lastrowid

    @property
    def arraysize(self) -> int:
        return 1

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        del value  # everything is fetched at once

    async def _async_soft_close(self) -> None:
        return  # nothing is open: the rows are already here

    def close(self) -> None:
        self._rows.clear()

    def setinputsizes(self, *inputsizes: Any) -> None:
        return None

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        await self._one_trip(operation, parameters, many=False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Sequence[Any]) -> Any:
        await self._one_trip(operation, seq_of_parameters, many=True)

    async def _one_trip(self, operation: Any, parameters: Any, *, many: bool) -> None:
        connection = self._connection
        async with self._adapt_connection._execute_mutex:
            # aiosqlite's own way to run a call on its thread (what its cursor methods use).
            self._description, self._rowcount, self._lastrowid, rows = await connection._execute(
                _run, connection._conn, operation, parameters, many
            )
        self._rows = collections.deque(rows) if rows else collections.deque()


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    """Also no trip to commit when no transaction is open: after a session that only read (sqlite3
    begins one only before a write), or after a call on the connection's thread that committed its
    own (`on_connection_thread`); each such trip waited for the event loop for nothing. A commit
    comes only once the session's statements have all finished, so the thread is idle and what it
    says is so. A rollback always goes to the thread: it also comes after a cancelled statement,
    which may still be queued there and open a transaction after this check, and the rollback,
    queued behind it, is what undoes it."""

    __slots__ = ()
    _cursor_cls = OneTripCursor

    def commit(self) -> None:
        connection = self._connection._connection
        if connection is None or connection.in_transaction:
            super().commit()


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        adapted = super().connect(*arg, **kw)
        # The adapter's connection, its class narrowed to the one whose cursors take one trip (the
        # same slots: only `_cursor_cls` differs).
        adapted.__class__ = OneTripConnection
        return adapted


class OneTripDialect(SQLiteDialect_aiosqlite):
    driver = "aiosqlite"  # as SQLAlchemy's: the same database, the same thread, fewer trips
    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls) -> AsyncAdapt_aiosqlite_dbapi:
        return OneTripDBAPI(__import__("aiosqlite"), __import__("sqlite3"))


registry.register(f"sqlite.{DRIVER}", __name__, "OneTripDialect")


async def on_connection_thread(connection: AsyncConnection, call: Callable[[sqlite3.Connection], T]) -> T:
    """`call(the sqlite3 connection)` on the connection's own thread: several statements back to back
    in one trip, in whatever transaction `connection` has open, instead of a trip (and a wait for the
    event loop) each. For a hot path whose statements SQLAlchemy would otherwise run one by one (the
    delivery sender's round); `call` holds the connection until it returns, so it must be short."""
    raw = await connection.get_raw_connection()
    adapted = raw.dbapi_connection
    if not isinstance(adapted, OneTripConnection):
        raise TypeError(f"not a {DRIVER} connection: {type(adapted).__name__}")
    aio = adapted._connection
    async with adapted._execute_mutex:
        return cast(T, await aio._execute(call, aio._conn))
