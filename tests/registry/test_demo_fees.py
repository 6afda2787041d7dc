"""`cradle seed-demo`'s fee schedules: every approved facility discloses one; a few inclusive ones
above the cap wait for EDU, flagged, and the rest keep within it."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from cradle.seed.fees import seed_fees
from cradle.seed.registry import seed_facilities
from services.registry.models import ChangeRequest, Facility, FeeSchedule, outbox
from services.registry.service.fees import fees_within_cap
from shared.db import make_engine
from tests.support import DatabaseFactory


async def test_seeded_fees_are_plausible_and_a_few_are_flagged(databases: DatabaseFactory) -> None:
    engine = make_engine(await databases.fresh("registry"))
    try:
        await seed_facilities(engine, count=600, seed=3)
        recorded, held = await seed_fees(engine, namespace="cradle", seed=3)
        assert await seed_fees(engine, namespace="cradle", seed=3) == (0, 0)  # once per facility
        async with async_sessionmaker(engine, expire_on_commit=False)() as session:
            approved = (
                (await session.execute(select(Facility).where(Facility.status == "approved"))).scalars().all()
            )
            schedules = (await session.execute(select(FeeSchedule))).scalars().all()
            requests = (await session.execute(select(ChangeRequest))).scalars().all()
            payloads = (await session.execute(select(outbox.c.payload))).scalars().all()
            flagged = [f for f in approved if f.fee_cap_flagged]
            today = date.today()
            within = [f for f in approved if f.inclusive and not f.fee_cap_flagged]
            checks = [await fees_within_cap(session, f.id, today) for f in within[:40]]
    finally:
        await engine.dispose()

    assert recorded == len(approved) == len(schedules)
    assert 0 < held == len(flagged) == len(requests) < 0.1 * len(approved)
    assert all(f.inclusive for f in flagged)
    assert all(r.kind == "fees" and r.status == "pending" and r.departments == ["EDU"] for r in requests)
    assert all(s.max_full_day_fen is not None and s.max_full_day_fen > 100_000 for s in schedules)
    assert all(f.fees is not None for f in approved if not f.fee_cap_flagged)
    assert all(checks)
    assert sum('"cradle.registry.fees.published"' in p for p in payloads) == recorded - held
    assert sum('"cradle.registry.change_request.opened"' in p for p in payloads) == held
