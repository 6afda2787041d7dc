"""`cradle seed-demo`'s city: plausible, deterministic, and consistent with the registry's rules."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from cradle.seed.registry import seed_facilities
from services.registry.models import Facility, LicenseSequence, Town, outbox
from services.registry.schemas import SHANGHAI_LAT, SHANGHAI_LON
from shared.db import make_engine
from tests.support import DatabaseFactory


async def test_a_seeded_city_covers_the_towns_within_shanghai(databases: DatabaseFactory) -> None:
    url = await databases.fresh("registry")
    engine = make_engine(url)
    try:
        assert await seed_facilities(engine, count=400, seed=7) == 400
        assert await seed_facilities(engine, count=50, seed=8) == 50  # a second run continues licences
        async with engine.connect() as connection:
            rows = (await connection.execute(select(Facility.__table__))).all()
            legal_towns = (
                await connection.execute(
                    select(func.count()).select_from(Town).where(Town.town_type != "other")
                )
            ).scalar_one()
            events = (await connection.execute(select(outbox.c.payload))).scalars().all()
            sequences = (await connection.execute(select(LicenseSequence.__table__))).all()
    finally:
        await engine.dispose()

    assert len(rows) == 450
    assert len({r.town_code for r in rows}) >= legal_towns  # every 街镇 has at least one
    assert all(
        SHANGHAI_LAT[0] <= r.lat <= SHANGHAI_LAT[1] and SHANGHAI_LON[0] <= r.lon <= SHANGHAI_LON[1]
        for r in rows
    )
    licences = [r.license_no for r in rows if r.license_no]
    assert len(licences) == len(set(licences)) and len(licences) > 0.8 * len(rows)
    assert all(r.status == "approved" for r in rows if r.license_no)
    assert all(
        getattr(r, f"enrolled_{a}") <= getattr(r, f"capacity_{a}")
        for r in rows
        for a in ("infant", "toddler", "preschool")
    )
    assert all(r.kind == "kindergarten" for r in rows if r.has_nursery_class)
    assert len(events) == 450
    approved_events = [json.loads(e) for e in events if '"cradle.registry.facility.approved"' in e]
    assert len(approved_events) == len(licences)
    assert sum(s.last_number for s in sequences) == len(licences)


async def test_the_same_seed_writes_the_same_city(databases: DatabaseFactory) -> None:
    cities = []
    for _ in range(2):
        engine = make_engine(await databases.fresh("registry"))
        try:
            await seed_facilities(engine, count=120, seed=42)
            async with engine.connect() as connection:
                cities.append(
                    (
                        await connection.execute(
                            select(Facility.id, Facility.name, Facility.lat).order_by(Facility.id)
                        )
                    ).all()
                )
        finally:
            await engine.dispose()
    assert cities[0] == cities[1]
