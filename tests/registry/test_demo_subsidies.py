"""`cradle seed-demo`'s subsidies: a rate for every district, and the latest closed month's list of
every district computed from the seeded records, published and paid; a second run adds nothing."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from cradle.seed.fees import seed_fees
from cradle.seed.registry import seed_facilities
from cradle.seed.subsidies import seed_subsidies
from services.registry.models import SubsidyLine, SubsidyList, SubsidyRate, outbox
from shared.db import make_engine
from tests.support import DatabaseFactory


async def test_seeded_subsidies_are_published_and_paid(databases: DatabaseFactory) -> None:
    engine = make_engine(await databases.fresh("registry"))
    try:
        await seed_facilities(engine, count=400, seed=5)
        await seed_fees(engine, namespace="cradle", seed=5)
        month, published, paid = await seed_subsidies(engine, namespace="cradle", seed=5)
        assert await seed_subsidies(engine, namespace="cradle", seed=5) == (month, 0, 0)
        async with async_sessionmaker(engine, expire_on_commit=False)() as session:
            rates = (await session.execute(select(SubsidyRate))).scalars().all()
            lists = (await session.execute(select(SubsidyList))).scalars().all()
            lines = (await session.execute(select(SubsidyLine))).scalars().all()
            payloads = (await session.execute(select(outbox.c.payload))).scalars().all()
    finally:
        await engine.dispose()

    assert len({r.district_code for r in rates}) == 16 == published == len(lists)
    assert all(lst.month == month and lst.status == "published" for lst in lists)
    eligible = [line for line in lines if line.eligible]
    refused = [line for line in lines if not line.eligible]
    # Most inclusive facilities reported and are paid; non-inclusive ones and a few others are refused.
    assert len(eligible) > 20 and refused
    assert {code for line in refused for code in line.refusals} >= {"not_inclusive", "enrolment_not_reported"}
    # The fees were disclosed before the month closed: only the few held for EDU above the cap fail.
    inclusive = [line for line in lines if "not_inclusive" not in line.refusals]
    above_cap = [line for line in inclusive if "fees_above_cap" in line.refusals]
    assert len(above_cap) < 0.1 * len(inclusive)
    assert all(line.amount_fen == line.places * line.rate_fen for line in eligible)
    assert sum(lst.total_fen for lst in lists) == sum(line.amount_fen for line in lines) > 0
    assert paid == sum(line.paid_fen or 0 for line in lines)
    assert sum('"cradle.registry.subsidy_list.published"' in p for p in payloads) == 16
