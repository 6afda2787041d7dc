"""Many rows in one statement (shared/rows.py): each row's values and the run's constants stored as
a plain INSERT stores them, on either database, by one statement compiled once whatever the number
of rows; a repeated key fails the whole statement and leaves nothing of it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import MetaData, String, event, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import make_engine
from shared.events.tables import inbox_table
from shared.rows import RowsInsert, one_of
from tests.support import DatabaseFactory

INBOX = inbox_table(MetaData())
ROWS = RowsInsert(INBOX, ("event_id", "event_type"), constants=("consumer", "handled_at"))
SHANGHAI = timezone(timedelta(hours=8))


async def test_rows_and_constants_are_stored_by_one_statement_compiled_once(
    databases: DatabaseFactory,
) -> None:
    engine = make_engine(await databases.fresh("delivery"))
    handled_at = datetime(2026, 12, 5, 22, 30, 0, 5, tzinfo=SHANGHAI)
    try:
        async with AsyncSession(engine) as session, session.begin():
            await ROWS.run(session, [("e1", "a.b"), ("e2", "引号'\"")], consumer="c", handled_at=handled_at)
            compiled = len(engine.sync_engine._compiled_cache or {})
            await ROWS.run(
                session, [(f"e{n}", "x") for n in range(3, 40)], consumer="c", handled_at=handled_at
            )
            assert len(engine.sync_engine._compiled_cache or {}) == compiled  # not one a row count
            await ROWS.run(session, [], consumer="c", handled_at=handled_at)  # nothing to do
        async with AsyncSession(engine) as session:
            rows = (await session.execute(select(INBOX).order_by(INBOX.c.event_id))).all()
        assert len(rows) == 39
        first = next(row for row in rows if row.event_id == "e2")
        assert (first.consumer, first.event_type) == ("c", "引号'\"")
        assert first.handled_at == handled_at and first.handled_at.tzinfo is not None
        assert first.handled_at.astimezone(UTC) == datetime(2026, 12, 5, 14, 30, 0, 5, tzinfo=UTC)

        # One repeated key: the whole statement fails, and none of its rows stays.
        with pytest.raises(IntegrityError):
            async with AsyncSession(engine) as session, session.begin():
                await ROWS.run(session, [("new", "x"), ("e1", "x")], consumer="c", handled_at=handled_at)
        async with AsyncSession(engine) as session:
            kept = (await session.execute(select(INBOX.c.event_id).where(INBOX.c.event_id == "new"))).all()
        assert kept == []
    finally:
        await engine.dispose()


async def test_the_constants_must_be_the_ones_declared(databases: DatabaseFactory) -> None:
    engine = make_engine(await databases.fresh("delivery"))
    try:
        async with AsyncSession(engine) as session, session.begin():
            with pytest.raises(TypeError, match="constants"):
                await ROWS.run(session, [("e1", "x")], consumer="c")
    finally:
        await engine.dispose()


async def test_a_time_without_an_offset_is_kept_as_utc(databases: DatabaseFactory) -> None:
    """In a row (PostgreSQL: inside the JSON) as in a constant, as asyncpg and SQLite's UtcDateTime
    take one: UTC, never the database server's own zone."""
    engine = make_engine(await databases.fresh("delivery"))
    timed_rows = RowsInsert(INBOX, ("consumer", "event_id", "event_type", "handled_at"))
    try:
        async with AsyncSession(engine) as session, session.begin():
            if databases.backend == "postgres":
                await session.execute(text("SET LOCAL TIME ZONE 'Asia/Shanghai'"))
            await timed_rows.run(session, [("c", "in-a-row", "x", datetime(2026, 12, 5, 9, 0))])
            await ROWS.run(session, [("constant", "x")], consumer="c", handled_at=datetime(2026, 12, 5, 9, 0))
        async with AsyncSession(engine) as session:
            kept = (await session.execute(select(INBOX.c.handled_at))).scalars().all()
        assert kept == [datetime(2026, 12, 5, 9, 0, tzinfo=UTC)] * 2
    finally:
        await engine.dispose()


async def test_a_list_is_one_parameter_and_one_statement_whatever_its_length(
    databases: DatabaseFactory,
) -> None:
    """`one_of`: the rows whose column is in the list (or, negated, not), an empty list included, by
    one statement text for every length (an expanding IN was a new text, prepared anew, each)."""
    engine = make_engine(await databases.fresh("delivery"))
    texts: set[str] = set()

    def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
        texts.add(statement)

    named = (
        select(INBOX.c.event_id).where(one_of(INBOX.c.event_id, "ids", String())).order_by(INBOX.c.event_id)
    )
    others = select(func.count()).select_from(INBOX).where(~one_of(INBOX.c.event_id, "ids", String()))
    try:
        async with AsyncSession(engine) as session, session.begin():
            await ROWS.run(
                session, [(f"e{n}", "x") for n in range(10)], consumer="c", handled_at=datetime.now(UTC)
            )
        event.listen(engine.sync_engine, "before_cursor_execute", seen)
        async with AsyncSession(engine) as session:
            for ids, expected in (
                (["e1"], ["e1"]),
                (["e3", "e2", "nothing", "it's"], ["e2", "e3"]),
                ([f"e{n}" for n in range(50)], [f"e{n}" for n in range(10)]),
                ([], []),
            ):
                assert (await session.execute(named, {"ids": ids})).scalars().all() == expected
                assert (await session.execute(others, {"ids": ids})).scalar_one() == 10 - len(expected)
        assert len(texts) == 2, texts
    finally:
        await engine.dispose()
