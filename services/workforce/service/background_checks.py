"""Background checks (资格审查): opened at every hire (T12), by an employer, or by the annual
re-check, each announced to POLICE (`background_check.requested`), answered by the police through
the API; a flagged answer blocks hires like a ban until it is resolved (and suspends employments:
service/standing.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.workforce.errors import BackgroundCheckNotFound, BackgroundCheckState
from services.workforce.events import BackgroundCheckRequested
from services.workforce.models import BackgroundCheck, Employment, Practitioner
from services.workforce.schemas import (
    BackgroundCheckAnswer,
    BackgroundCheckCreate,
    BackgroundCheckRead,
    BackgroundCheckResolve,
)
from shared.clock import new_id, utcnow
from shared.errors import Forbidden, invalid
from shared.events.outbox import emit
from shared.i18n import tr
from shared.identity import Identity, require_bureau
from shared.pagination import Page, PageParams, cut_page, keyset, make_page


def check_read(check: BackgroundCheck) -> BackgroundCheckRead:
    return BackgroundCheckRead(
        id=check.id,
        practitioner_id=check.practitioner_id,
        employment_id=check.employment_id,
        reason=check.reason,
        status=check.status,
        requested_at=check.requested_at,
        answered_at=check.answered_at,
        answer_note=check.answer_note,
        resolved_at=check.resolved_at,
        resolution_note=check.resolution_note,
    )


async def open_check(
    session: AsyncSession,
    *,
    practitioner_id: str,
    reason: str,
    requested_by: str,
    employment: Employment | None = None,
    now: datetime | None = None,
) -> BackgroundCheck:
    """A pending check, and its request to POLICE in the same transaction."""
    check = BackgroundCheck(
        id=new_id(),
        practitioner_id=practitioner_id,
        employment_id=employment.id if employment else None,
        reason=reason,
        status="pending",
        requested_by=requested_by,
        requested_at=now or utcnow(),
    )
    session.add(check)
    await session.flush()
    await emit(
        session,
        BackgroundCheckRequested(
            background_check_id=check.id,
            practitioner_id=practitioner_id,
            reason=reason,  # type: ignore[arg-type]  # hire | annual | other, as stored
            employment_id=employment.id if employment else None,
            facility_id=employment.facility_id if employment else None,
            district_code=employment.district_code if employment else None,
            requested_at=check.requested_at,
        ),
    )
    return check


async def request_background_check(
    *, session: AsyncSession, caller: Identity, practitioner: Practitioner, data: BackgroundCheckCreate
) -> BackgroundCheck:
    employment = None
    if data.employment_id is not None:
        employment = await session.get(Employment, data.employment_id)
        if employment is None or employment.practitioner_id != practitioner.id:
            raise invalid("employment_id", "is not an employment of this practitioner")
    return await open_check(
        session,
        practitioner_id=practitioner.id,
        reason=data.reason,
        requested_by=caller.client_id,
        employment=employment,
    )


def _police(caller: Identity) -> None:
    # A POLICE bureau client, nothing less: not the admin, nor another kind whose bureau field says POLICE.
    require_bureau(caller, "POLICE", action="Answering or resolving a background check (公安局)")


async def get_check(*, session: AsyncSession, practitioner: Practitioner, check_id: str) -> BackgroundCheck:
    check = await session.get(BackgroundCheck, check_id)
    if check is None or check.practitioner_id != practitioner.id:
        raise BackgroundCheckNotFound(
            tr(
                "No background check {check_id} of this practitioner.",
                check_id=check_id,
            )
        )
    return check


async def answer_background_check(
    *, session: AsyncSession, caller: Identity, check: BackgroundCheck, data: BackgroundCheckAnswer
) -> BackgroundCheck:
    _police(caller)
    if check.status != "pending":
        raise BackgroundCheckState(tr("This check is {status}, not pending.", status=check.status))
    check.status = data.result
    check.answered_by = caller.client_id
    check.answered_at = utcnow()
    check.answer_note = data.note
    return check


async def resolve_background_check(
    *, session: AsyncSession, caller: Identity, check: BackgroundCheck, data: BackgroundCheckResolve
) -> BackgroundCheck:
    _police(caller)
    if check.status != "flagged":
        raise BackgroundCheckState(
            tr(
                "This check is {status}; only a flagged one is resolved.",
                status=check.status,
            )
        )
    check.status = "resolved"
    check.resolved_by = caller.client_id
    check.resolved_at = utcnow()
    check.resolution_note = data.note
    return check


async def list_checks(
    *, session: AsyncSession, practitioner: Practitioner, page: PageParams
) -> Page[BackgroundCheckRead]:
    """Newest request first."""
    query = keyset(
        select(BackgroundCheck).where(BackgroundCheck.practitioner_id == practitioner.id),
        [BackgroundCheck.requested_at, BackgroundCheck.id],
        page,
        descending=True,
    )
    rows, cursor = cut_page(
        (await session.execute(query)).scalars().all(),
        limit=page.limit,
        position_of=lambda c: [c.requested_at, c.id],
    )
    return Page[BackgroundCheckRead](items=[check_read(c) for c in rows], next_cursor=cursor)


async def police_queue(
    *, session: AsyncSession, caller: Identity, status: str, page: PageParams
) -> Page[BackgroundCheckRead]:
    if not caller.sees_whole_city():
        raise Forbidden("The city's background-check queue is for the bureaus.")
    query = (
        select(BackgroundCheck)
        .where(BackgroundCheck.status == status)
        .order_by(BackgroundCheck.id)
        .limit(page.limit + 1)
    )
    if page.after:
        query = query.where(BackgroundCheck.id > str(page.after[0]))
    rows = [check_read(c) for c in (await session.execute(query)).scalars()]
    return make_page(rows, limit=page.limit, position_of=lambda r: [r.id])
