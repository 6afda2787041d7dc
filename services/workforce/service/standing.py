"""An employment's standing after its hire (T12): provisional until its background check is clear
(and its health certificate, where a deployment hires without one, is recorded); a flagged answer —
at the hire or at the annual re-check — suspends every employment of the person until the
district decides to end or reinstate it. A district that does not decide within
`suspension_decision_days` gets the deployment's `suspension_default_action`. Only cleared
employments count toward the staffing ratios, so every change of standing re-announces them."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.workforce.errors import EmploymentNotSuspended
from services.workforce.events import EmploymentReinstated, EmploymentSuspended
from services.workforce.models import BackgroundCheck, Employment
from services.workforce.schemas import EmploymentDecision
from services.workforce.service import staffing
from services.workforce.service.common import ACTIVE, Workforce
from services.workforce.service.hiring import close, ended_event
from services.workforce.service.history import record_change
from shared.clock import as_utc, shanghai_today, utcnow
from shared.errors import Forbidden
from shared.events.outbox import emit
from shared.i18n import tr
from shared.identity import ClientKind, Identity

PROVISIONAL, CLEARED, SUSPENDED = "provisional", "cleared", "suspended"
DEFAULT_ACTOR = "workforce:suspension-default"


async def after_answer(
    *, session: AsyncSession, workforce: Workforce, check: BackgroundCheck, by: str
) -> list[Employment]:
    """POLICE answered `check`: clear lifts the provisional standing of the employments waiting on it;
    flagged suspends every active employment of the person. Returns the employments changed."""
    now = utcnow()
    if check.status == "clear":
        waiting = (
            (
                await session.execute(
                    select(Employment).where(
                        Employment.background_check_id == check.id,
                        Employment.status == ACTIVE,
                        Employment.standing == PROVISIONAL,
                    )
                )
            )
            .scalars()
            .all()
        )
        changed = []
        for employment in waiting:
            if employment.health_certificate_pending:
                continue  # still waits on its health certificate
            set_standing(employment, CLEARED, by=by, kind="provisional_cleared", session=session, at=now)
            changed.append(employment)
        await reassess(session, changed)
        return changed
    if check.status != "flagged":
        return []
    active = (
        (
            await session.execute(
                select(Employment).where(
                    Employment.practitioner_id == check.practitioner_id,
                    Employment.status == ACTIVE,
                    Employment.standing != SUSPENDED,
                )
            )
        )
        .scalars()
        .all()
    )
    decide_by = now + timedelta(days=workforce.settings.suspension_decision_days)
    for employment in active:
        set_standing(
            employment, SUSPENDED, by=by, kind="suspended", session=session, at=now,
            note=f"background check {check.id} flagged",
        )  # fmt: skip
        employment.suspended_at = now
        employment.background_check_id = check.id
        await emit(
            session,
            EmploymentSuspended(
                employment_id=employment.id,
                practitioner_id=employment.practitioner_id,
                facility_id=employment.facility_id,
                district_code=employment.district_code,
                background_check_id=check.id,
                suspended_at=now,
                decide_by=decide_by,
                default_action=workforce.settings.suspension_default_action,
            ),
        )
    await reassess(session, list(active))
    return list(active)


def set_standing(
    employment: Employment,
    standing: str,
    *,
    by: str,
    kind: str,
    session: AsyncSession,
    at: datetime,
    note: str | None = None,
) -> None:
    record_change(
        session,
        employment=employment,
        kind=kind,
        by=by,
        changes={"standing": (employment.standing, standing)},
        note=note,
        at=at,
    )
    employment.standing = standing
    employment.version += 1


async def reassess(session: AsyncSession, employments: list[Employment]) -> None:
    if employments:
        await session.flush()
        await staffing.announce(session, {e.facility_id for e in employments})


def _district_of(caller: Identity, employment: Employment) -> None:
    """The decision is the district's own (its guidance centre), for its district's employments."""
    if caller.kind != ClientKind.district or caller.district_code != employment.district_code:
        raise Forbidden(tr("Only the employment's district decides on a suspended employment."))


async def decide(
    *, session: AsyncSession, caller: Identity, employment: Employment, data: EmploymentDecision
) -> Employment:
    _district_of(caller, employment)
    return await _apply(
        session,
        employment=employment,
        decision=data.decision,
        by=caller.client_id,
        note=data.note,
        district=True,
    )


async def _apply(
    session: AsyncSession, *, employment: Employment, decision: str, by: str, note: str, district: bool
) -> Employment:
    if employment.status != ACTIVE or employment.standing != SUSPENDED:
        raise EmploymentNotSuspended(
            tr(
                "Employment {employment_id} is {standing}, not suspended.",
                employment_id=employment.id,
                standing=employment.standing if employment.status == ACTIVE else employment.status,
            )
        )
    now = utcnow()
    if decision == "end":
        record_change(
            session,
            employment=employment,
            kind="ended_after_suspension",
            by=by,
            changes={"status": (employment.status, "ended")},
            note=note,
            at=now,
        )
        close(employment, end_date=shanghai_today(now), reason="background_check", by=by, note=note[:300])
        employment.version += 1
        await emit(session, ended_event(employment))
    else:
        # Reinstated: as before the flag, cleared unless its health certificate is still pending.
        standing = PROVISIONAL if employment.health_certificate_pending else CLEARED
        set_standing(employment, standing, by=by, kind="reinstated", session=session, at=now, note=note)
        employment.suspended_at = None
        await emit(
            session,
            EmploymentReinstated(
                employment_id=employment.id,
                practitioner_id=employment.practitioner_id,
                facility_id=employment.facility_id,
                district_code=employment.district_code,
                decided_by="district" if district else "default",
                reinstated_at=now,
            ),
        )
    await reassess(session, [employment])
    return employment


async def apply_default_decisions(*, session: AsyncSession, workforce: Workforce, now: datetime) -> int:
    """Suspensions the district left undecided past `suspension_decision_days` get the default
    action, once (a decided employment is no longer suspended)."""
    due = now - timedelta(days=workforce.settings.suspension_decision_days)
    overdue = (
        (
            await session.execute(
                select(Employment)
                .where(
                    Employment.status == ACTIVE,
                    Employment.standing == SUSPENDED,
                    Employment.suspended_at <= due,
                )
                .order_by(Employment.suspended_at, Employment.id)
                .limit(500)
            )
        )
        .scalars()
        .all()
    )
    action = workforce.settings.suspension_default_action
    for employment in overdue:
        assert employment.suspended_at is not None and as_utc(employment.suspended_at) <= due
        await _apply(
            session,
            employment=employment,
            decision=action,
            by=DEFAULT_ACTOR,
            note=f"No decision by the district within {workforce.settings.suspension_decision_days} days",
            district=False,
        )
    return len(overdue)
