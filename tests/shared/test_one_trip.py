"""`OneTrip` (shared/db.py): a statement in one trip to the database answers as the engine does —
the same rows, times UTC-aware, values the statement holds itself, its inserts committed and seen by
the engine — and a database that is gone raises SQLAlchemy's OperationalError (a 503 in a service)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, bindparam, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError

from shared.db import OneTrip, make_engine

SHANGHAI = timezone(timedelta(hours=8))
rows = Table(
    "rows",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("name", String(20)),
    Column("status", String(10)),
    Column("at", DateTime(timezone=True)),
)
ACTIVE_NAMED = (
    select(rows.c.id, rows.c.at)
    .where(rows.c.name == bindparam("name"), rows.c.status == "active")
    .order_by(rows.c.id)
)


async def test_reads_and_inserts_in_one_trip_answer_as_the_engine(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'one.db'}")
    trips = OneTrip(engine)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(rows.metadata.create_all)
        morning = datetime(2026, 3, 1, 9, 30, tzinfo=SHANGHAI)
        await trips.insert_many(
            insert(rows),
            [
                {"id": 1, "name": "甲", "status": "active", "at": morning},
                {"id": 2, "name": "甲", "status": "lifted", "at": morning},
                {"id": 3, "name": "乙", "status": "active", "at": morning + timedelta(hours=1)},
            ],
        )
        async with engine.connect() as connection:
            by_engine = [tuple(r) for r in (await connection.execute(ACTIVE_NAMED, {"name": "甲"})).all()]
        by_trip = await trips.all(ACTIVE_NAMED, {"name": "甲"})
        assert by_trip == by_engine == [(1, morning)]
        assert by_trip[0][1].tzinfo is UTC
        assert await trips.all(ACTIVE_NAMED, {"name": "丙"}) == []

        # A batch with a repeated key is refused whole, as the engine would refuse it.
        with pytest.raises(IntegrityError):
            await trips.insert_many(
                insert(rows),
                [
                    {"id": 4, "name": "丁", "status": "active", "at": morning},
                    {"id": 1, "name": "丁", "status": "active", "at": morning},
                ],
            )
        assert await trips.all(ACTIVE_NAMED, {"name": "丁"}) == []
    finally:
        trips.close()
        await engine.dispose()


async def test_a_database_that_is_gone_raises_operational_error(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'missing' / 'one.db'}")
    trips = OneTrip(engine)
    try:
        with pytest.raises(OperationalError):
            await trips.all(ACTIVE_NAMED, {"name": "甲"})
        with pytest.raises(OperationalError):
            await trips.insert_many(insert(rows), [{"id": 1, "name": "甲", "status": "active", "at": None}])
    finally:
        trips.close()
        await engine.dispose()
