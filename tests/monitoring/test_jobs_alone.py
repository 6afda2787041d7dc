"""The scheduled jobs with two replicas: a round is taken by one replica at a time (shared/jobs.py),
so two schedulers firing at once raise a silent camera's alert once, not once each."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, update

from services.monitoring.jobs import run_round
from services.monitoring.models import Alert, Camera
from shared.jobs import round_alone
from tests.monitoring.conftest import MonitoringStack
from tests.monitoring.test_watch import ALWAYS_OPEN
from tests.support import DatabaseFactory


async def offline_alerts(mon: MonitoringStack, facility_id: str) -> list[Alert]:
    async with mon.monitoring.state.sessionmaker() as session:
        query = select(Alert).where(Alert.facility_id == facility_id, Alert.type == "camera_offline")
        return list((await session.execute(query)).scalars())


async def test_two_replicas_schedulers_at_once_raise_a_silent_camera_s_alert_once(
    mon: MonitoringStack, databases: DatabaseFactory
) -> None:
    facility = await mon.approved_facility(opening_hours=ALWAYS_OPEN)
    quiet = await mon.camera(facility["id"])
    settings = mon.monitoring.state.settings
    maker = mon.monitoring.state.sessionmaker
    shanghai = ZoneInfo("Asia/Shanghai")
    now = (datetime.now(shanghai) + timedelta(days=1)).replace(hour=10, minute=0).astimezone(UTC)
    async with maker() as session, session.begin():  # last heard from twenty minutes ago
        await session.execute(
            update(Camera).where(Camera.id == quiet["id"]).values(last_seen_at=now - timedelta(minutes=20))
        )
    if databases.backend == "postgres":
        # While another replica holds the round, this one skips it and raises nothing.
        async with round_alone(maker, "monitoring.jobs") as other_has_it:
            assert other_has_it
            assert await run_round(maker=maker, settings=settings, now=now) is None
        assert await offline_alerts(mon, facility["id"]) == []
    if databases.backend == "postgres":
        rounds = await asyncio.gather(*(run_round(maker=maker, settings=settings, now=now) for _ in range(2)))
    else:  # one writer: replicas are refused on SQLite, one process runs its rounds in turn
        rounds = [
            await run_round(maker=maker, settings=settings, now=now),
            await run_round(maker=maker, settings=settings, now=now),
        ]
    assert sum(r["offline_alerts"] for r in rounds if r is not None) == 1
    assert [a.camera_id for a in await offline_alerts(mon, facility["id"])] == [quiet["id"]]
