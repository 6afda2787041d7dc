"""Times on SQLite as on PostgreSQL: a `DateTime(timezone=True)` column is stored in UTC and read
back with its offset. (Found by tests/fuzz: SQLite handed back naive datetimes, so replies carried
times without an offset, against docs/API.md and the documented `date-time` format.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import Column, DateTime, Integer, MetaData, Table, insert, select, text

from shared.db import make_engine

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
