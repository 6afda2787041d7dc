"""Migrations monitoring_0009 and 0010 key the events they find as the ingest keys new ones
(0009: PostgreSQL's md5 in SQL, Python's on SQLite), so a re-sent event stored before the upgrade is
still a repeat."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from sqlalchemy import text

from cradle.migrations import downgrade, upgrade
from services.monitoring.service.ingest import dedup_key, id_ms
from shared.db import make_engine
from tests.monitoring.conftest import ulid, uuid7
from tests.support import DatabaseFactory


async def test_events_stored_before_the_upgrade_get_the_ingest_s_keys(databases: DatabaseFactory) -> None:
    url = await databases.fresh("monitoring")
    await asyncio.to_thread(downgrade, "monitoring", url, "monitoring_0008")
    facility_id = str(uuid.uuid4())
    event_ids = [f"ev-{n}-{uuid.uuid4().hex}" for n in range(40)] + ["事件-1"]
    engine = make_engine(url)
    try:
        async with engine.begin() as connection:
            now = datetime.now(UTC)
            await connection.execute(
                text(
                    "INSERT INTO cctv_event (event_id, camera_id, facility_id, type, occurred_at, "
                    "received_at, payload) VALUES (:e, :c, :f, 'heartbeat', :at, :at, '{}')"
                ),
                [{"e": e, "c": str(uuid.uuid4()), "f": facility_id, "at": now} for e in event_ids],
            )
        await asyncio.to_thread(upgrade, "monitoring", url)
        async with engine.connect() as connection:
            rows = (
                await connection.execute(text("SELECT event_id, facility_id, dedup_key FROM cctv_event"))
            ).all()
    finally:
        await engine.dispose()
    keys = {row.event_id: row.dedup_key for row in rows}
    assert keys == {e: dedup_key(facility_id, e) for e in event_ids}
    assert min(keys.values()) < 0 < max(keys.values())  # both halves of the signed 64 bits


async def test_events_stored_before_0010_get_the_milliseconds_of_their_ids(
    databases: DatabaseFactory,
) -> None:
    """Migration monitoring_0010 reads each stored time-ordered id's milliseconds as the ingest reads
    a new one's, so a re-sent UUIDv7 or ULID event stored before the upgrade is still a repeat."""
    url = await databases.fresh("monitoring")
    await asyncio.to_thread(downgrade, "monitoring", url, "monitoring_0009")
    facility_id = str(uuid.uuid4())
    ms = 1_764_900_000_123
    event_ids = [uuid7(ms + n) for n in range(15)] + [ulid(ms - n) for n in range(15)]
    event_ids += [str(uuid.uuid4()) for _ in range(10)] + ["事件-1"]
    engine = make_engine(url)
    try:
        async with engine.begin() as connection:
            now = datetime.now(UTC)
            await connection.execute(
                text(
                    "INSERT INTO cctv_event (dedup_key, event_id, camera_id, facility_id, type, "
                    "occurred_at, received_at, payload) VALUES (:k, :e, :c, :f, 'heartbeat', :at, :at, '{}')"
                ),
                [
                    {
                        "k": dedup_key(facility_id, e),
                        "e": e,
                        "c": str(uuid.uuid4()),
                        "f": facility_id,
                        "at": now,
                    }
                    for e in event_ids
                ],
            )
        await asyncio.to_thread(upgrade, "monitoring", url)
        async with engine.connect() as connection:
            rows = (await connection.execute(text("SELECT event_id, id_ms, dedup_key FROM cctv_event"))).all()
    finally:
        await engine.dispose()
    assert {row.event_id: (row.id_ms, row.dedup_key) for row in rows} == {
        e: (id_ms(e), dedup_key(facility_id, e)) for e in event_ids
    }
    assert sum(1 for row in rows if row.id_ms) == 30
