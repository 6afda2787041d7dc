"""Engines and sessions for SQLite (embedded) and PostgreSQL (production) URLs."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiosqlite
from sqlalchemy import event
from sqlalchemy.dialects.sqlite import DATETIME as SQLITE_DATETIME
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session
from sqlalchemy.sql import Insert, Select
from sqlalchemy.types import DateTime

from shared import sqlite_driver

OUTBOX_DIRTY = "cradle_outbox_dirty"
ON_OUTBOX_COMMIT = "cradle_on_outbox_commit"


def _stop_aiosqlite_once() -> None:
    """aiosqlite's `stop()` queues a last job for the connection's thread, which then ends; a second
    `stop()` queues one that nobody runs, and `close()` waits for it forever. SQLAlchemy makes that
    second call: a connection invalidated while a cancelled task uses it is stopped by force while the
    graceful close it started still runs, and that close's own stop then never returns — a task no
    cancellation ends, which held a process's (and a test's) event loop at shutdown for good. The
    first stop does the work; a later one has nothing to wait for."""
    stop = aiosqlite.Connection.stop
    if getattr(stop, "cradle_once", False):
        return

    def stop_once(self: aiosqlite.Connection) -> Any:
        if not self._running:  # stopping already: its job ends the thread
            return None
        return stop(self)

    stop_once.cradle_once = True  # type: ignore[attr-defined]
    aiosqlite.Connection.stop = stop_once  # type: ignore[method-assign]


_stop_aiosqlite_once()


def async_url(url: str) -> str:
    """Accept plain `postgresql://` and `sqlite:///` URLs and pick the async drivers we ship."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    return parsed.render_as_string(hide_password=False)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Writers from several processes (a relay and a request) wait instead of failing at once.
    cursor.execute("PRAGMA busy_timeout=10000")
    # Reads of large tables (figures over 300k families) go through the page cache, not read() calls.
    cursor.execute("PRAGMA mmap_size=268435456")
    cursor.execute("PRAGMA cache_size=-32768")  # 32 MiB per connection
    # A checkpoint (with its fsyncs) every ~40 MiB of WAL instead of every 4 MiB: a batch of 500
    # events dirties ~500 index pages, so the default checkpointed every second batch, inside its
    # commit (bench/README.md, ingest).
    cursor.execute("PRAGMA wal_autocheckpoint=10000")
    cursor.close()


def sqlite_time(moment: datetime) -> str:
    """An aware time as a `DateTime(timezone=True)` column keeps it on SQLite (UtcDateTime), for a
    statement run without SQLAlchemy (shared/sqlite_driver.py's `on_connection_thread`)."""
    return moment.astimezone(UTC).isoformat(" ", "microseconds")[:26]


def from_sqlite_time(text: str | None) -> datetime | None:
    """A time as SQLite keeps it, aware again (UTC), as UtcDateTime reads it back."""
    return None if text is None else datetime.fromisoformat(text).replace(tzinfo=UTC)


class UtcDateTime(SQLITE_DATETIME):
    """SQLite keeps no offset. A `DateTime(timezone=True)` column is written in UTC and read back
    UTC-aware, as PostgreSQL's timestamptz is, so every time a service returns carries its offset
    (docs/API.md) on either database."""

    def bind_processor(self, dialect: Any) -> Callable[[Any], Any] | None:
        write = super().bind_processor(dialect)
        if write is None or self._storage_format != SQLITE_DATETIME._storage_format:
            return write if not self.timezone or write is None else _in_utc(write)
        in_utc = self.timezone

        # SQLAlchemy's text (`YYYY-MM-DD HH:MM:SS.ffffff`, the wall time), as `isoformat` writes its
        # first 26 characters: half the time of SQLAlchemy's format from a dict of fields, a few µs
        # a delivery for the sender and the consumer, which write thousands of times a second.
        def process(value: Any) -> Any:
            if value.__class__ is not datetime:
                return write(value)  # None, a date, a subclass: as SQLAlchemy writes them
            if in_utc and value.tzinfo is not None and value.tzinfo is not UTC:
                value = value.astimezone(UTC)
            return value.isoformat(" ", "microseconds")[:26]

        return process

    def result_processor(self, dialect: Any, coltype: object) -> Callable[[Any], Any] | None:
        read = super().result_processor(dialect, coltype)
        if not self.timezone:
            return read

        def process(value: Any) -> Any:
            moment = read(value) if read is not None else value
            if isinstance(moment, datetime) and moment.tzinfo is None:
                return moment.replace(tzinfo=UTC)
            return moment

        return process


def _in_utc(write: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def process(value: Any) -> Any:
        if isinstance(value, datetime) and value.utcoffset() is not None:
            value = value.astimezone(UTC)
        return write(value)

    return process


# The pool's defaults, also ServiceSettings' (db_pool_size, db_max_overflow, db_pool_timeout_seconds).
POOL_SIZE = 10
POOL_MAX_OVERFLOW = 10
POOL_TIMEOUT_SECONDS = 15.0


def make_engine(
    url: str,
    *,
    pool_size: int = POOL_SIZE,
    max_overflow: int = POOL_MAX_OVERFLOW,
    pool_timeout: float = POOL_TIMEOUT_SECONDS,
) -> AsyncEngine:
    """`pool_size` connections kept open, `max_overflow` more opened for a burst; past both, a
    request waits in the pool's queue up to `pool_timeout` seconds for one to come back (then a 503,
    shared/errors.py). The wait is shorter than the gateway's upstream timeout, so a burst queues
    and the caller still gets an answer, not the gateway's 504."""
    url = async_url(url)
    pool = {"pool_size": pool_size, "max_overflow": max_overflow, "pool_timeout": pool_timeout}
    if is_sqlite(url):
        # aiosqlite, each statement one trip to its thread (shared/sqlite_driver.py).
        url = make_url(url).set(drivername=f"sqlite+{sqlite_driver.DRIVER}").render_as_string(False)
        engine = create_async_engine(url, connect_args={"timeout": 10}, **pool)
        engine.dialect.colspecs = {**engine.dialect.colspecs, DateTime: UtcDateTime}
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_pre_ping=True, **pool)


@event.listens_for(Session, "after_commit")
def _wake_outbox_relay(session: Session) -> None:
    if session.info.pop(OUTBOX_DIRTY, False):
        wake = session.info.get(ON_OUTBOX_COMMIT)
        if wake is not None:
            wake()


@event.listens_for(Session, "after_rollback")
def _forget_outbox_rows(session: Session) -> None:
    session.info.pop(OUTBOX_DIRTY, None)


@asynccontextmanager
async def session_scope(maker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One transaction per unit of work: commit once on success, roll back on any error."""
    async with maker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


_SQLITE_WRITERS: weakref.WeakKeyDictionary[Engine, asyncio.Lock] = weakref.WeakKeyDictionary()


@asynccontextmanager
async def writer_turn(maker: async_sessionmaker[AsyncSession]) -> AsyncIterator[None]:
    """SQLite lets one connection write at a time. The writers of a process that write often (CCTV
    batches, the outbox relay's bookkeeping, presence flushes) queue here for the database, instead
    of meeting in SQLite's busy handler: that one sleeps 1, 2, 5, 10 … ms a try whatever is left of
    the holder's work, and a 2 ms INSERT of 500 events took a median 22 ms beside the relay
    (bench/README.md, ingest). Nothing to wait for on PostgreSQL, which locks rows."""
    bind = maker.kw.get("bind")
    if not isinstance(bind, AsyncEngine) or bind.dialect.name != "sqlite":
        yield
        return
    async with _writer_lock(bind):
        yield


def _writer_lock(engine: AsyncEngine) -> asyncio.Lock:
    lock = _SQLITE_WRITERS.get(engine.sync_engine)
    if lock is None:
        lock = _SQLITE_WRITERS[engine.sync_engine] = asyncio.Lock()
    return lock


async def refresh_planner_statistics(engine: AsyncEngine) -> None:
    """SQLite chooses indexes by statistics that nothing gathers on its own (PostgreSQL's autovacuum
    does): without them a `status = 'approved'` index wins over the far better `(lat, lon)` one."""
    if engine.dialect.name != "sqlite":
        return
    async with engine.begin() as connection:
        await connection.exec_driver_sql("PRAGMA analysis_limit=1000")  # sampled: fast on big tables
        await connection.exec_driver_sql("ANALYZE")


class OneTrip:
    """Small, frequent statements (a ban check's lookup, its audit rows) in one trip to the database.

    Through the async engine on SQLite, a lookup is five trips to aiosqlite's connection thread
    (cursor, execute, fetch, close, the pool's rollback) and a committed insert as many, each a
    hand-over of the GIL: a profile of single ban checks put a third of the service's GIL time
    there. Here each is one trip. Reads run on a small pool of threads, each with its own connection
    that may only read (`query_only`); each read is a transaction of its own, so it sees every
    commit before it, a ban included. Inserts run on one thread with its own connection, in the
    process's turn for SQLite's write lock (`writer_turn`), BEGIN … COMMIT in the one trip, at the
    engine's durability (WAL, `synchronous=NORMAL`). Statements are compiled once, values written
    and read as the engine would, and a database error is raised as SQLAlchemy raises it, so the
    services' handlers answer it as they always have (unavailable: a 503). PostgreSQL's driver needs
    no thread: the engine's own connections are used there.
    """

    def __init__(self, engine: AsyncEngine, *, readers: int = 2) -> None:
        self.engine = engine
        sqlite = engine.dialect.name == "sqlite"
        self._reads = (
            ThreadPoolExecutor(max_workers=readers, thread_name_prefix="one-trip-read") if sqlite else None
        )
        self._writes = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="one-trip-write") if sqlite else None
        )
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        # Keyed by the statement itself (kept alive by the key), never by its id, which a later one may reuse.
        self._compiled: dict[tuple[Any, tuple[str, ...]], _Compiled] = {}

    async def all(self, statement: Select[Any], params: dict[str, Any]) -> list[tuple[Any, ...]]:
        if self._reads is None:
            async with self.engine.connect() as connection:
                return [tuple(row) for row in (await connection.execute(statement, params)).all()]
        compiled = self._compile(statement, ())
        values = compiled.values(params)
        rows = await self._run(self._reads, self._fetch, compiled.sql, values)
        readers = compiled.readers
        return [
            tuple(
                read(value) if read is not None else value for read, value in zip(readers, row, strict=True)
            )
            for row in rows
        ]

    async def insert_many(self, statement: Insert, rows: list[dict[str, Any]]) -> None:
        """All of `rows` (each with the same keys) committed in one transaction, or none."""
        if not rows:
            return
        if self._writes is None:
            async with self.engine.begin() as connection:
                await connection.execute(statement, rows)
            return
        compiled = self._compile(statement, tuple(rows[0]))
        values = [compiled.values(row) for row in rows]
        async with _writer_lock(self.engine):
            await self._run(self._writes, self._insert, compiled.sql, values)

    def close(self) -> None:
        for executor in (self._reads, self._writes):
            if executor is not None:
                executor.shutdown(wait=True)
        for connection in self._opened:
            connection.close()
        self._opened.clear()

    async def _run(
        self, executor: ThreadPoolExecutor, work: Callable[..., Any], sql: str, values: Any
    ) -> Any:
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, work, sql, values)
        except sqlite3.Error as exc:
            raise DBAPIError.instance(sql, values, exc, sqlite3.Error) from exc

    def _compile(self, statement: Select[Any] | Insert, keys: tuple[str, ...]) -> _Compiled:
        known = self._compiled.get((statement, keys))
        if known is None:
            known = self._compiled[(statement, keys)] = _Compiled.of(statement, keys, self.engine.dialect)
        return known

    def _connection(self, *, read_only: bool) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            path = self.engine.url.database or ""
            connection = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
            _sqlite_pragmas(connection, None)
            if read_only:
                connection.execute("PRAGMA query_only=ON")
            self._local.connection = connection
            self._opened.append(connection)
        return connection

    def _fetch(self, sql: str, values: tuple[Any, ...]) -> list[Any]:
        return self._connection(read_only=True).execute(sql, values).fetchall()

    def _insert(self, sql: str, values: list[tuple[Any, ...]]) -> None:
        connection = self._connection(read_only=False)
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.executemany(sql, values)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise


@dataclass(frozen=True)
class _Compiled:
    """A statement as SQLite runs it: its SQL, its parameters in order (with the values the
    statement holds itself), how each is written and how each column is read, as the engine would."""

    sql: str
    names: Sequence[str]
    held: dict[str, Any]
    writers: dict[str, Any]
    readers: list[Any]

    @classmethod
    def of(cls, statement: Select[Any] | Insert, keys: tuple[str, ...], dialect: Any) -> _Compiled:
        compiled = statement.compile(dialect=dialect, column_keys=list(keys) or None)
        names = compiled.positiontup or []
        return cls(
            sql=compiled.string,
            names=names,
            held={name: bind.value for name, bind in compiled.binds.items() if not bind.required},
            writers={
                name: compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
                for name in names
            },
            readers=[
                column.type.dialect_impl(dialect).result_processor(dialect, None)
                for column in getattr(statement, "selected_columns", ())
            ],
        )

    def values(self, given: dict[str, Any]) -> tuple[Any, ...]:
        out = []
        for name in self.names:
            value = given[name] if name in given else self.held[name]
            write = self.writers[name]
            out.append(write(value) if write is not None else value)
        return tuple(out)
