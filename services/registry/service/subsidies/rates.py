"""Subsidies: FINANCE's rate per inclusive place per month, per district and year, with its history."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.models import District, SubsidyRate
from services.registry.schemas.subsidies import RateSet
from shared.clock import as_utc, new_id, utcnow
from shared.errors import invalid
from shared.identity import Identity, require_bureau


async def set_rate(
    *, session: AsyncSession, caller: Identity, year: int, district_code: str, data: RateSet
) -> SubsidyRate:
    require_bureau(caller, "FINANCE", action="Setting a subsidy rate")
    if await session.get(District, district_code) is None:
        raise invalid("district_code", "is not one of Shanghai's 16 districts (see GET /v1/divisions)")
    rate = SubsidyRate(
        id=new_id(),
        district_code=district_code,
        year=year,
        amount_fen=data.amount_fen,
        note=data.note,
        set_by=caller.client_id,
        set_at=utcnow(),
    )
    session.add(rate)
    await session.flush()
    return rate


async def rate_history(*, session: AsyncSession, year: int, district_code: str) -> list[SubsidyRate]:
    """Every setting of the rate, newest first."""
    rows = await session.execute(
        select(SubsidyRate)
        .where(SubsidyRate.district_code == district_code, SubsidyRate.year == year)
        .order_by(SubsidyRate.set_at.desc(), SubsidyRate.id.desc())
    )
    return list(rows.scalars().all())


async def current_rates(*, session: AsyncSession, year: int) -> list[SubsidyRate]:
    """Each district's rate in force now for the year (districts without one are left out)."""
    rows = await session.execute(
        select(SubsidyRate).where(SubsidyRate.year == year).order_by(SubsidyRate.district_code)
    )
    latest: dict[str, SubsidyRate] = {}
    for rate in rows.scalars().all():
        held = latest.get(rate.district_code)
        if held is None or (as_utc(rate.set_at), rate.id) > (as_utc(held.set_at), held.id):
            latest[rate.district_code] = rate
    return list(latest.values())


async def rate_at(
    session: AsyncSession, *, district_code: str, year: int, at: datetime
) -> SubsidyRate | None:
    """The rate as recorded at `at`: the latest set no later than it."""
    rows = await session.execute(
        select(SubsidyRate)
        .where(
            SubsidyRate.district_code == district_code,
            SubsidyRate.year == year,
            SubsidyRate.set_at <= at,
        )
        .order_by(SubsidyRate.set_at.desc(), SubsidyRate.id.desc())
        .limit(1)
    )
    return rows.scalars().first()
