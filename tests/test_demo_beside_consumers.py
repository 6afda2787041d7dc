"""`cradle seed-demo` beside the consumers and twice: the workforce's and monitoring's facility
projections may already hold rows their consumers wrote from the registry's events (some newer than
the seed's), and a second run of the same seed meets every row of the first. The seeders keep the
newer row, never touch what only a consumer writes, and the second run adds nothing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from cradle.seed.monitoring import seed_monitoring
from cradle.seed.registry import seed_facilities
from cradle.seed.workforce import seed_workforce
from services.monitoring import handlers as monitoring_handlers
from services.monitoring.models import Camera
from services.monitoring.models import Facility as WatchedFacility
from services.registry.models import Facility, LicenseSequence
from services.registry.models import outbox as registry_outbox
from services.workforce import handlers as workforce_handlers
from services.workforce.config import WorkforceSettings
from services.workforce.models import Employment, FacilityProjection, Practitioner
from services.workforce.models import outbox as workforce_outbox
from services.workforce.service.common import WORKFORCE_SESSION_KEY, Workforce
from shared.db import make_engine
from shared.events.envelope import CloudEvent
from shared.events.outbox import OutboxWriter, outbox_session_info
from shared.events.streams import Namespace
from tests.conftest import service_settings
from tests.support import DatabaseFactory


async def _count(engine: AsyncEngine, table: Any) -> int:
    async with engine.connect() as connection:
        return (await connection.execute(select(func.count()).select_from(table))).scalar_one()


async def _consume(
    engine: AsyncEngine, workforce: Workforce, handlers: dict, events: list[CloudEvent]
) -> None:
    # The workforce's consumer announces a newly approved facility's staffing through its outbox.
    info = outbox_session_info(OutboxWriter(workforce_outbox, Namespace("demo"), "/cradle/workforce"))
    info[WORKFORCE_SESSION_KEY] = workforce
    async with AsyncSession(engine, info=info) as session, session.begin():
        for event in events:
            await handlers[event.type](event, session)


async def test_seeding_beside_the_consumers_and_twice(
    databases: DatabaseFactory, keys: dict[str, Any]
) -> None:
    settings: WorkforceSettings = service_settings(
        WorkforceSettings, url=await databases.fresh("workforce"), nats_url="", namespace="demo", keys=keys
    )
    workforce = Workforce.from_settings(settings)
    registry = make_engine(await databases.fresh("registry"))
    staff_db = make_engine(settings.database_url)
    watch_db = make_engine(await databases.fresh("monitoring"))
    try:
        events: list[CloudEvent] = []
        assert await seed_facilities(registry, count=60, seed=9, events_out=events) == 60
        # `cradle up` runs: its consumers handle the first events before the seeder's next steps,
        # and one facility has changed since (version 2, renamed) — newer than the seed's row.
        early = events[:20]
        approved = next(e for e in early if e.data["status"] == "approved")
        renamed = CloudEvent(
            source=approved.source,
            type=approved.type,
            subject=approved.subject,
            data={**approved.data, "name": "改名后的托育园", "version": 2},
        )
        for engine, handlers in (
            (staff_db, workforce_handlers.HANDLERS),
            (watch_db, monitoring_handlers.HANDLERS),
        ):
            await _consume(engine, workforce, handlers, [*early, renamed])
        async with watch_db.begin() as connection:  # the staffing verdict only the consumer writes
            await connection.execute(
                WatchedFacility.__table__.update()  # type: ignore[attr-defined]
                .where(WatchedFacility.id == approved.subject)
                .values(staffing_in_ratio=True, staffing_shortfall=0)
            )

        staff = await seed_workforce(
            staff_db, workforce=workforce, facilities=events, practitioners=300, seed=9, namespace="demo"
        )
        watch = await seed_monitoring(watch_db, facilities=events, cameras=150, seed=9)
        assert staff.practitioners == 300 and watch.cameras == 150

        async with AsyncSession(staff_db) as session:
            projected = await session.get(FacilityProjection, approved.subject)
            assert projected is not None and (projected.name, projected.version) == ("改名后的托育园", 2)
            assert await _count(staff_db, FacilityProjection) == 60
        async with AsyncSession(watch_db) as session:
            watched = await session.get(WatchedFacility, approved.subject)
            assert watched is not None and (watched.name, watched.version) == ("改名后的托育园", 2)
            assert watched.staffing_in_ratio is True
            assert await _count(watch_db, WatchedFacility) == 60

        # The rest of the registry's events, delivered now, change nothing the seeders wrote.
        before = (await _count(staff_db, FacilityProjection), await _count(watch_db, WatchedFacility))
        for engine, handlers in (
            (staff_db, workforce_handlers.HANDLERS),
            (watch_db, monitoring_handlers.HANDLERS),
        ):
            await _consume(engine, workforce, handlers, events[20:])
        assert (await _count(staff_db, FacilityProjection), await _count(watch_db, WatchedFacility)) == before

        # --- the same seed again: nothing added, the newer row still kept -----------------------
        counts = {
            "facilities": await _count(registry, Facility),
            "announced": await _count(registry, registry_outbox),
            "practitioners": await _count(staff_db, Practitioner),
            "employments": await _count(staff_db, Employment),
            "cameras": await _count(watch_db, Camera),
        }
        async with registry.connect() as connection:
            numbered = (await connection.execute(select(func.sum(LicenseSequence.last_number)))).scalar_one()
        again: list[CloudEvent] = []
        assert await seed_facilities(registry, count=60, seed=9, events_out=again) == 0
        assert [e.subject for e in again] == [e.subject for e in events]  # the next steps still see all
        await seed_workforce(
            staff_db, workforce=workforce, facilities=again, practitioners=300, seed=9, namespace="demo"
        )
        await seed_monitoring(watch_db, facilities=again, cameras=150, seed=9)
        assert {
            "facilities": await _count(registry, Facility),
            "announced": await _count(registry, registry_outbox),
            "practitioners": await _count(staff_db, Practitioner),
            "employments": await _count(staff_db, Employment),
            "cameras": await _count(watch_db, Camera),
        } == counts
        async with registry.connect() as connection:
            assert (
                await connection.execute(select(func.sum(LicenseSequence.last_number)))
            ).scalar_one() == numbered
            licences = (await connection.execute(select(Facility.license_no))).scalars().all()
        assert sorted(licence for licence in licences if licence) == sorted(
            str(e.data["license_no"]) for e in again if e.data.get("license_no")
        )  # the second run hands on the licences the first issued
        async with AsyncSession(staff_db) as session:
            projected = await session.get(FacilityProjection, approved.subject)
            assert projected is not None and projected.version == 2
    finally:
        for engine in (registry, staff_db, watch_db):
            await engine.dispose()
