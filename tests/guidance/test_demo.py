"""`cradle seed-demo`'s guidance data: plausible, consistent with the service's rules, phones that
decrypt with the service's keys, and figures that answer on it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from cradle.seed.guidance import seed_guidance
from services.guidance.models import (
    Booking,
    Child,
    Family,
    Guardian,
    GuidanceSession,
    Place,
    ResourcePush,
    outbox,
)
from services.guidance.service.common import PHONE, Guidance
from services.guidance.service.figures import figures
from shared.clock import shanghai_today
from shared.db import make_engine
from tests.guidance.conftest import guidance_settings
from tests.support import DatabaseFactory


async def test_a_seeded_city_is_consistent_and_its_figures_answer(
    databases: DatabaseFactory, keys: dict[str, Any]
) -> None:
    settings = guidance_settings(
        url=await databases.fresh("guidance"), nats_url="", namespace="demo", keys=keys
    )
    guidance = Guidance.from_settings(settings)
    engine = make_engine(settings.database_url)
    try:
        report = await seed_guidance(engine, guidance=guidance, families=1500, seed=7)
        assert report.families == 1500 and report.bookings > 0 and report.pushes > 0
        async with engine.connect() as db:
            count = lambda model: db.execute(select(func.count()).select_from(model))  # noqa: E731
            assert (await count(Family)).scalar_one() == 1500
            assert (await count(Guardian)).scalar_one() == report.guardians
            assert (await count(Child)).scalar_one() <= report.children
            stations = (
                await db.execute(
                    select(func.count(func.distinct(Place.town_code))).where(Place.kind == "guidance_station")
                )
            ).scalar_one()
            assert 190 <= stations <= 216
            over = (
                await db.execute(
                    select(func.count())
                    .select_from(GuidanceSession)
                    .where(GuidanceSession.booked > GuidanceSession.capacity)
                )
            ).scalar_one()
            assert over == 0
            booked = (await db.execute(select(func.sum(GuidanceSession.booked)))).scalar_one()
            assert booked == (await count(Booking)).scalar_one()
            pushed_to_needy = (
                await db.execute(
                    select(func.count())
                    .select_from(ResourcePush)
                    .join(Family, Family.id == ResourcePush.family_id)
                    .where(Family.in_need.is_(False))
                )
            ).scalar_one()
            assert pushed_to_needy == 0
            guardian = (
                await db.execute(select(Guardian).where(Guardian.phone_encrypted.is_not(None)).limit(1))
            ).one()
            phone = guidance.open(guardian.phone_key_id, guardian.phone_encrypted, context=PHONE)
            assert (
                len(phone) == 11
                and phone.startswith("1")
                and guardian.phone_masked == phone[:3] + "****" + phone[-4:]
            )
            assert guardian.phone_hash == guidance.hasher.digest(phone)
            assert (await count(outbox)).scalar_one() >= report.places + report.resources
        async with engine.connect() as connection:
            from sqlalchemy.ext.asyncio import AsyncSession

            async with AsyncSession(bind=connection) as session:
                city = await figures(session=session, year=shanghai_today().year, target=6)
        assert city.city.families > 0 and city.city.towns == 216
        assert 0 < city.city.families_in_need_offline_target_met <= city.city.families_in_need
        assert 0 < city.city.newborn_families_visited <= city.city.newborn_families
    finally:
        await engine.dispose()
