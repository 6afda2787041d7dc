"""Migrations monitoring_0009 and 0010 key the events they find as the ingest keys new ones
(0009: PostgreSQL's md5 in SQL, Python's on SQLite), so a re-sent event stored before the upgrade is
still a repeat."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from cradle.migrations import downgrade, upgrade
from services.monitoring.service.ingest import dedup_key, id_ms
from shared.db import make_engine
from tests.monitoring.conftest import ulid, uuid7
from tests.support import DatabaseFactory

EVENT_COLUMNS = "event_id, camera_id, facility_id, type, occurred_at, received_at, payload"
EVENT_VALUES = ":event_id, :camera_id, :facility_id, 'heartbeat', :at, :at, '{}'"


async def upgraded_from(
    databases: DatabaseFactory, revision: str, rows: list[dict[str, Any]], *, with_dedup_key: bool, read: str
) -> list[Any]:
    """A monitoring database at `revision` holding `rows` (events, with their `dedup_key` if the
    revision has one), upgraded to head; what `read` finds then."""
    url = await databases.fresh("monitoring")
    await asyncio.to_thread(downgrade, "monitoring", url, revision)
    columns, values = EVENT_COLUMNS, EVENT_VALUES
    if with_dedup_key:
        columns, values = f"dedup_key, {columns}", f":dedup_key, {values}"
    engine = make_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(f"INSERT INTO cctv_event ({columns}) VALUES ({values})"), rows)
        await asyncio.to_thread(upgrade, "monitoring", url)
        async with engine.connect() as connection:
            return list((await connection.execute(text(read))).all())
    finally:
        await engine.dispose()


def event_rows(facility_id: str, event_ids: list[str], *, with_dedup_key: bool) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [
        {"event_id": e, "camera_id": str(uuid.uuid4()), "facility_id": facility_id, "at": now}
        | ({"dedup_key": dedup_key(facility_id, e)} if with_dedup_key else {})
        for e in event_ids
    ]


async def test_events_stored_before_the_upgrade_get_the_ingest_s_keys(databases: DatabaseFactory) -> None:
    facility_id = str(uuid.uuid4())
    event_ids = [f"ev-{n}-{uuid.uuid4().hex}" for n in range(40)] + ["事件-1"]
    rows = await upgraded_from(
        databases,
        "monitoring_0008",
        event_rows(facility_id, event_ids, with_dedup_key=False),
        with_dedup_key=False,
        read="SELECT event_id, facility_id, dedup_key FROM cctv_event",
    )
    keys = {row.event_id: row.dedup_key for row in rows}
    assert keys == {e: dedup_key(facility_id, e) for e in event_ids}
    assert min(keys.values()) < 0 < max(keys.values())  # both halves of the signed 64 bits


async def test_events_stored_before_0010_get_the_milliseconds_of_their_ids(
    databases: DatabaseFactory,
) -> None:
    """Migration monitoring_0010 reads each stored time-ordered id's milliseconds as the ingest reads
    a new one's, so a re-sent UUIDv7 or ULID event stored before the upgrade is still a repeat."""
    facility_id = str(uuid.uuid4())
    ms = 1_764_900_000_123
    event_ids = [uuid7(ms + n) for n in range(15)] + [ulid(ms - n) for n in range(15)]
    event_ids += [str(uuid.uuid4()) for _ in range(10)] + ["事件-1"]
    rows = await upgraded_from(
        databases,
        "monitoring_0009",
        event_rows(facility_id, event_ids, with_dedup_key=True),
        with_dedup_key=True,
        read="SELECT event_id, id_ms, dedup_key FROM cctv_event",
    )
    assert {row.event_id: (row.id_ms, row.dedup_key) for row in rows} == {
        e: (id_ms(e), dedup_key(facility_id, e)) for e in event_ids
    }
    assert sum(1 for row in rows if row.id_ms) == 30
