"""The SQLite engines' driver (shared/sqlite_driver.py): each statement is one trip to aiosqlite's
thread — counted here at aiosqlite's own door — and answers as SQLAlchemy's aiosqlite driver does:
rows, RETURNING, row counts, the last row id, executemany, the ORM's inserts, streamed results, and
sqlite3's errors as SQLAlchemy's."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import create_async_engine

from shared.db import make_engine
from shared.sqlite_driver import DRIVER, on_connection_thread

things = Table(
    "things",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("name", String(20), unique=True),
)


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of every call aiosqlite runs on a connection's thread."""
    seen: list[str] = []
    run = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(getattr(fn, "__name__", repr(fn)))
        return await run(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return seen


async def test_each_statement_is_one_trip_and_answers_as_before(tmp_path: Path, trips: list[str]) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'driver.db'}")
    assert engine.url.drivername == f"sqlite+{DRIVER}"
    try:
        async with engine.begin() as connection:
            await connection.run_sync(things.metadata.create_all)
            trips.clear()

            returned = await connection.execute(
                insert(things).returning(things.c.id), [{"name": "a"}, {"name": "b"}]
            )
            assert sorted(returned.scalars()) == [1, 2]
            assert len(trips) == 1  # one trip for the insert, its RETURNING rows with it

            plain = await connection.execute(insert(things).values(name="c"))
            assert plain.inserted_primary_key == (3,)

            many = await connection.execute(insert(things), [{"name": "d"}, {"name": "e"}])
            assert many.rowcount == 2

            changed = await connection.execute(update(things).where(things.c.id > 3).values(name=None))
            assert changed.rowcount == 2

            trips.clear()
            rows = (await connection.execute(select(things.c.id, things.c.name).order_by(things.c.id))).all()
            assert [tuple(row) for row in rows] == [(1, "a"), (2, "b"), (3, "c"), (4, None), (5, None)]
            assert len(trips) == 1  # SQLAlchemy's driver: cursor, execute, fetch, close — four

            nothing = (await connection.execute(select(things).where(things.c.id < 0))).all()
            assert nothing == []

        async with engine.connect() as connection:
            streamed = await connection.stream(
                select(things.c.name).where(things.c.id <= 3).order_by(things.c.id)
            )
            assert [name async for name in streamed.scalars()] == ["a", "b", "c"]
    finally:
        await engine.dispose()


async def test_sqlite_errors_are_sqlalchemys_and_the_transaction_rolls_back(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'errors.db'}")
    try:
        async with engine.begin() as connection:
            await connection.run_sync(things.metadata.create_all)
            await connection.execute(insert(things).values(name="only"))
        with pytest.raises(IntegrityError):
            async with engine.begin() as connection:
                await connection.execute(insert(things).values(name="second"))
                await connection.execute(insert(things).values(name="only"))
        with pytest.raises(OperationalError):
            async with engine.connect() as connection:
                await connection.execute(text("SELECT * FROM no_such_table"))
        async with engine.connect() as connection:
            names = (await connection.execute(select(things.c.name))).scalars().all()
        assert names == ["only"]  # the failed transaction's first insert is gone with it
    finally:
        await engine.dispose()


async def test_a_call_on_the_connections_thread_is_one_trip_inside_the_transaction(
    tmp_path: Path, trips: list[str]
) -> None:
    """`on_connection_thread`: several statements in one trip, in the connection's own transaction
    (rolled back with it), and refused on a connection of another driver."""
    engine = make_engine(f"sqlite:///{tmp_path / 'driver.db'}")

    def add_two_and_count(connection: sqlite3.Connection) -> int:
        connection.execute("INSERT INTO things (name) VALUES ('x')")
        connection.execute("INSERT INTO things (name) VALUES ('y')")
        return connection.execute("SELECT count(*) FROM things").fetchone()[0]

    try:
        async with engine.begin() as connection:
            await connection.run_sync(things.metadata.create_all)
        async with engine.connect() as connection:
            transaction = await connection.begin()
            await connection.execute(insert(things).values(name="w"))
            trips.clear()
            assert await on_connection_thread(connection, add_two_and_count) == 3
            assert trips == ["add_two_and_count"]
            await transaction.rollback()
        async with engine.connect() as connection:
            assert (await connection.execute(select(func.count()).select_from(things))).scalar_one() == 0
    finally:
        await engine.dispose()
    other = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'other.db'}")
    try:
        async with other.connect() as connection:
            with pytest.raises(TypeError, match=DRIVER):
                await on_connection_thread(connection, add_two_and_count)
    finally:
        await other.dispose()


async def test_committing_a_transaction_that_wrote_nothing_takes_no_trip(
    tmp_path: Path, trips: list[str]
) -> None:
    """sqlite3 opens a transaction only before a write: a commit with none open is not sent to the
    thread; one after a write is, and keeps it. A rollback always is (it may follow a cancelled
    statement still queued on the thread, and must come after it to undo it)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'driver.db'}")
    try:
        async with engine.begin() as connection:
            await connection.run_sync(things.metadata.create_all)
        async with engine.connect() as connection:
            trips.clear()
            await connection.execute(select(things))
            await connection.commit()
            assert trips == ["_run"]  # the SELECT alone
            await connection.execute(select(things))
            await connection.rollback()
            assert trips == ["_run", "_run", "rollback"]
            await connection.execute(insert(things).values(name="kept"))
            await connection.commit()
            await connection.execute(insert(things).values(name="undone"))
            await connection.rollback()
            assert trips == ["_run", "_run", "rollback", "_run", "commit", "_run", "rollback"]
            names = (await connection.execute(select(things.c.name))).scalars().all()
            assert names == ["kept"]
    finally:
        await engine.dispose()
