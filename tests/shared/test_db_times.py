"""Times on SQLite as on PostgreSQL: a `DateTime(timezone=True)` column is stored in UTC and read
back with its offset. (Found by tests/fuzz: SQLite handed back naive datetimes, so replies carried
times without an offset, against docs/API.md and the documented `date-time` format.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Column, DateTime, Integer, MetaData, Table, insert, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.sqlite import DATETIME as SQLITE_DATETIME

from shared.db import UtcDateTime, make_engine

SHANGHAI = timezone(timedelta(hours=8))
times = Table(
    "times",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("at", DateTime(timezone=True)),
    Column("local", DateTime()),
)


async def test_sqlite_keeps_utc_and_gives_the_offset_back(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'times.db'}")
    try:
        async with engine.begin() as connection:
            await connection.run_sync(times.metadata.create_all)
            morning = datetime(2026, 3, 1, 9, 30, tzinfo=SHANGHAI)
            await connection.execute(
                insert(times).values(id=1, at=morning, local=datetime(2026, 3, 1, 9, 30))
            )

            row = (await connection.execute(select(times.c.at, times.c.local))).one()
            assert row.at == morning and row.at.tzinfo is UTC  # the same instant, in UTC
            assert row.local == datetime(2026, 3, 1, 9, 30) and row.local.tzinfo is None  # untouched
            stored = (await connection.execute(text("SELECT at FROM times"))).scalar_one()
            assert stored == "2026-03-01 01:30:00.000000"  # what raw SQL elsewhere compares against
            later = select(times.c.id).where(times.c.at > datetime(2026, 3, 1, 1, 0, tzinfo=UTC))
            assert (await connection.execute(later)).scalars().all() == [1]
    finally:
        await engine.dispose()


# Any time, naive or with any offset (SQLite keeps the wall time of naive columns as given).
any_time = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).flatmap(
    lambda moment: st.sampled_from([None, UTC, SHANGHAI, timezone(timedelta(hours=-5, minutes=-30))]).map(
        lambda zone: moment if zone is None else moment.replace(tzinfo=zone)
    )
)


@settings(max_examples=500, deadline=None)
@given(any_time)
def test_times_are_written_as_sqlalchemy_writes_them(moment: datetime) -> None:
    """UtcDateTime's own faster writer gives SQLAlchemy's text to the character: the stored times are
    compared as text, so one format throughout."""
    dialect = sqlite.dialect()
    sqlalchemy_writes = SQLITE_DATETIME().bind_processor(dialect)
    assert sqlalchemy_writes is not None
    in_utc = moment.astimezone(UTC) if moment.tzinfo is not None else moment
    aware, naive = UtcDateTime(timezone=True), UtcDateTime()
    assert aware.bind_processor(dialect)(moment) == sqlalchemy_writes(in_utc)  # type: ignore[misc]
    assert naive.bind_processor(dialect)(moment) == sqlalchemy_writes(moment)  # type: ignore[misc]
    assert aware.bind_processor(dialect)(None) is None  # type: ignore[misc]
