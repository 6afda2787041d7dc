"""A fetched batch of events is numbered in arrival order (`seq`, the feed's cursor) by one INSERT on
SQLite, not one statement an event: the numbers follow the batch's order and map to their events."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cradle.migrations import upgrade
from services.delivery.models import EventRecord
from services.delivery.service.log import record_events
from shared.db import make_engine
from tests.delivery.test_batches import facility_event


async def test_a_batch_is_numbered_in_arrival_order_by_one_insert(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'delivery.db'}"
    await asyncio.to_thread(upgrade, "delivery", url)
    engine = make_engine(url)
    inserts: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO EVENT_RECORD"):
            inserts.append(statement)

    sqlalchemy_event.listen(engine.sync_engine, "before_cursor_execute", seen)
    events = [facility_event(name=f"托育点{index}") for index in range(40)]
    try:
        async with AsyncSession(engine) as session, session.begin():
            await record_events(session=session, events=events)
        async with engine.connect() as connection:
            numbered = (
                await connection.execute(select(EventRecord.event_id).order_by(EventRecord.seq))
            ).scalars()
            assert list(numbered) == [event.id for event in events]
    finally:
        await engine.dispose()
    assert len(inserts) == 1
