"""The annual re-check (未成年人保护法 Art. 62: a records check at hiring and every year after):
every employed practitioner is checked against the bans, and a background check is opened for
whoever's last one is due."""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.workforce.models import (
    BackgroundCheck,
    Ban,
    BanNotification,
    Employment,
    FacilityProjection,
    Practitioner,
    Recheck,
)
from services.workforce.schemas import RecheckSummary
from services.workforce.service import staffing
from services.workforce.service.background_checks import open_check
from services.workforce.service.bans import notify_employer
from services.workforce.service.common import Workforce, lock_person, visible_facilities
from services.workforce.service.hiring import close, ended_event
from shared.clock import as_utc, new_id, shanghai_today
from shared.db import session_scope
from shared.events.outbox import emit
from shared.identity import Identity

log = structlog.get_logger("cradle.workforce.recheck")
BATCH = 200
RECHECK_ACTOR = "workforce:annual-recheck"


async def run_annual_recheck(
    *, maker: async_sessionmaker[AsyncSession], workforce: Workforce, now: datetime
) -> int:
    """Re-check everyone employed now who has no re-check for this year yet; one transaction per
    batch, so a large city is done in steps and a failure loses at most one batch. Returns how many
    were re-checked."""
    year = shanghai_today(now).year
    done = 0
    while True:
        async with session_scope(maker) as session:
            due = (
                (
                    await session.execute(
                        select(Employment.practitioner_id)
                        .where(
                            Employment.status == "active",
                            ~select(Recheck.id)
                            .where(
                                Recheck.practitioner_id == Employment.practitioner_id, Recheck.year == year
                            )
                            .exists(),
                        )
                        .distinct()
                        .order_by(Employment.practitioner_id)
                        .limit(BATCH)
                    )
                )
                .scalars()
                .all()
            )
            for practitioner_id in due:
                await _recheck_one(
                    session, workforce=workforce, practitioner_id=practitioner_id, year=year, now=now
                )
            done += len(due)
        if len(due) < BATCH:
            return done


async def _recheck_one(
    session: AsyncSession, *, workforce: Workforce, practitioner_id: str, year: int, now: datetime
) -> None:
    practitioner = await session.get(Practitioner, practitioner_id)
    assert practitioner is not None
    await lock_person(session, practitioner.id_hash)  # a ban issued meanwhile is seen, not raced
    ban = (
        await session.execute(
            select(Ban).where(Ban.id_hash == practitioner.id_hash, Ban.status == "active").limit(1)
        )
    ).scalar_one_or_none()
    if ban is not None:
        # Issuing a ban ends employment at once; finding one here means something slipped past
        # (e.g. a restore from backup). End it the same way, and tell the employers.
        log.error("recheck_found_banned_employee", practitioner_id=practitioner.id, ban_id=ban.id)
        employments = (
            (
                await session.execute(
                    select(Employment).where(
                        Employment.practitioner_id == practitioner.id, Employment.status == "active"
                    )
                )
            )
            .scalars()
            .all()
        )
        for employment in employments:
            close(
                employment, end_date=shanghai_today(now), reason="ban", by=RECHECK_ACTOR, note=f"ban {ban.id}"
            )
            await emit(session, ended_event(employment))
            await staffing.announce(session, [employment.facility_id])
            known = await session.execute(
                select(BanNotification.id).where(
                    BanNotification.ban_id == ban.id, BanNotification.facility_id == employment.facility_id
                )
            )
            if known.first() is None:
                notify_employer(session, ban=ban, employment=employment, now=now)
                await session.flush()
    last_requested = (
        await session.execute(
            select(func.max(BackgroundCheck.requested_at)).where(
                BackgroundCheck.practitioner_id == practitioner.id
            )
        )
    ).scalar_one_or_none()
    check_id = None
    every = timedelta(days=workforce.settings.recheck_every_days)
    if ban is None and (last_requested is None or as_utc(last_requested) <= now - every):
        check = await open_check(
            session, practitioner_id=practitioner.id, reason="annual", requested_by=RECHECK_ACTOR, now=now
        )
        check_id = check.id
    session.add(
        Recheck(
            id=new_id(),
            practitioner_id=practitioner.id,
            year=year,
            checked_at=now,
            banned=ban is not None,
            background_check_id=check_id,
        )
    )
    await session.flush()


async def summary(*, session: AsyncSession, caller: Identity, year: int) -> RecheckSummary:
    """The year's re-checks among the practitioners the caller may see (by where they work)."""
    visible = (
        select(Employment.practitioner_id)
        .join(FacilityProjection, FacilityProjection.facility_id == Employment.facility_id)
        .where(visible_facilities(caller))
    )
    employed = (
        await session.execute(
            select(func.count(func.distinct(Employment.practitioner_id)))
            .join(FacilityProjection, FacilityProjection.facility_id == Employment.facility_id)
            .where(Employment.status == "active", visible_facilities(caller))
        )
    ).scalar_one()
    rechecks = (
        await session.execute(
            select(Recheck.banned, BackgroundCheck.status)
            .outerjoin(BackgroundCheck, BackgroundCheck.id == Recheck.background_check_id)
            .where(Recheck.year == year, Recheck.practitioner_id.in_(visible))
        )
    ).all()
    statuses = [status for _, status in rechecks if status is not None]
    return RecheckSummary(
        year=year,
        employed=int(employed),
        rechecked=len(rechecks),
        banned_found=sum(1 for banned, _ in rechecks if banned),
        background_checks_opened=len(statuses),
        background_checks_pending=statuses.count("pending"),
        background_checks_clear=statuses.count("clear"),
        background_checks_flagged=statuses.count("flagged") + statuses.count("resolved"),
    )
