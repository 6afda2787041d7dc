"""Engines and sessions for SQLite (embedded) and PostgreSQL (production) URLs."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aiosqlite
from sqlalchemy import event
from sqlalchemy.dialects.sqlite import DATETIME as SQLITE_DATETIME
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session
from sqlalchemy.types import DateTime

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


class UtcDateTime(SQLITE_DATETIME):
    """SQLite keeps no offset. A `DateTime(timezone=True)` column is written in UTC and read back
    UTC-aware, as PostgreSQL's timestamptz is, so every time a service returns carries its offset
    (docs/API.md) on either database."""

    def bind_processor(self, dialect: Any) -> Callable[[Any], Any] | None:
        write = super().bind_processor(dialect)
        if not self.timezone or write is None:
            return write

        def process(value: Any) -> Any:
            if isinstance(value, datetime) and value.utcoffset() is not None:
                value = value.astimezone(UTC)
            return write(value)

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
    lock = _SQLITE_WRITERS.get(bind.sync_engine)
    if lock is None:
        lock = _SQLITE_WRITERS[bind.sync_engine] = asyncio.Lock()
    async with lock:
        yield


async def refresh_planner_statistics(engine: AsyncEngine) -> None:
    """SQLite chooses indexes by statistics that nothing gathers on its own (PostgreSQL's autovacuum
    does): without them a `status = 'approved'` index wins over the far better `(lat, lon)` one."""
    if engine.dialect.name != "sqlite":
        return
    async with engine.begin() as connection:
        await connection.exec_driver_sql("PRAGMA analysis_limit=1000")  # sampled: fast on big tables
        await connection.exec_driver_sql("ANALYZE")
