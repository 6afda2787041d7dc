"""健康合格证明 (DOMAIN.md, "Health"): every staff member holds a valid health certificate to keep
working. The daily job flags each active employment whose holder's certificate has expired (once:
a flagged employment is skipped) and tells its facility and district (`employment.flagged`); a
flagged employment does not count toward the ratios. Recording a valid certificate lifts the flag,
and lifts the provisional standing of a hire made pending the certificate."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.workforce.config import HEALTH_CERTIFICATE
from services.workforce.events import EmploymentFlagged
from services.workforce.models import BackgroundCheck, Certificate, Employment
from services.workforce.service.common import ACTIVE
from services.workforce.service.history import record_change
from services.workforce.service.standing import CLEARED, PROVISIONAL, reassess, set_standing
from shared.clock import shanghai_today, utcnow
from shared.events.outbox import emit

HEALTH_ACTOR = "workforce:health-certificates"
BATCH = 500


async def flag_expired(*, session: AsyncSession, now: datetime) -> int:
    """Flag active employments whose holder has no health certificate valid today. Employments hired
    pending a certificate are already known to lack one: they stay provisional, not flagged."""
    today = shanghai_today(now)
    valid = exists().where(
        Certificate.practitioner_id == Employment.practitioner_id,
        Certificate.type == HEALTH_CERTIFICATE,
        Certificate.issued_on <= today,
        Certificate.expires_on >= today,
    )
    lapsed = (
        (
            await session.execute(
                select(Employment)
                .where(
                    Employment.status == ACTIVE,
                    Employment.health_flagged_on.is_(None),
                    Employment.health_certificate_pending.is_(False),
                    ~valid,
                )
                .order_by(Employment.id)
                .limit(BATCH)
            )
        )
        .scalars()
        .all()
    )
    at = utcnow()
    for employment in lapsed:
        record_change(
            session,
            employment=employment,
            kind="health_flagged",
            by=HEALTH_ACTOR,
            changes={"health_flagged_on": (None, today)},
            at=at,
        )
        employment.health_flagged_on = today
        employment.version += 1
        await emit(
            session,
            EmploymentFlagged(
                employment_id=employment.id,
                practitioner_id=employment.practitioner_id,
                facility_id=employment.facility_id,
                district_code=employment.district_code,
                reason="health_certificate_expired",
                flagged_on=today,
            ),
        )
    await reassess(session, list(lapsed))
    return len(lapsed)


async def certificate_recorded(*, session: AsyncSession, certificate: Certificate, by: str) -> None:
    """A health certificate valid today lifts the flag of its holder's employments and settles a
    hire that waited on it (cleared once its background check is clear too)."""
    today = shanghai_today()
    if certificate.type != HEALTH_CERTIFICATE or not certificate.issued_on <= today <= certificate.expires_on:
        return
    waiting = (
        (
            await session.execute(
                select(Employment).where(
                    Employment.practitioner_id == certificate.practitioner_id,
                    Employment.status == ACTIVE,
                    (Employment.health_flagged_on.is_not(None)) | Employment.health_certificate_pending,
                )
            )
        )
        .scalars()
        .all()
    )
    at = utcnow()
    for employment in waiting:
        record_change(
            session,
            employment=employment,
            kind="health_restored",
            by=by,
            changes={
                "health_flagged_on": (employment.health_flagged_on, None),
                "health_certificate_pending": (employment.health_certificate_pending, False),
            },
            note=f"health certificate {certificate.number}",
            at=at,
        )
        employment.health_flagged_on = None
        employment.health_certificate_pending = False
        employment.version += 1
        if employment.standing == PROVISIONAL and await _check_clear(session, employment):
            set_standing(employment, CLEARED, by=by, kind="provisional_cleared", session=session, at=at)
    await reassess(session, list(waiting))


async def _check_clear(session: AsyncSession, employment: Employment) -> bool:
    if employment.background_check_id is None:
        return False
    found = await session.execute(
        select(BackgroundCheck.id).where(
            and_(
                BackgroundCheck.id == employment.background_check_id,
                BackgroundCheck.status.in_(("clear", "resolved")),
            )
        )
    )
    return found.first() is not None
