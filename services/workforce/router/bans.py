"""Bans (终身禁入): issued and rescinded by a bureau, employers notified, checks audited."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from services.workforce.deps import WorkforceDep
from services.workforce.router.common import Banner, PageDep, Reader, Writer
from services.workforce.schemas import (
    BanCheckRequest,
    BanCheckResult,
    BanCreate,
    BanNotificationRead,
    BanRead,
    BanRescind,
)
from services.workforce.service import ban_checks, bans
from shared.api import IdPath
from shared.idempotency import idempotent
from shared.identity import AuthenticatedDep, PurposeDep, RequestIdDep
from shared.pagination import Page
from shared.service import SessionDep

router = APIRouter(prefix="/v1", tags=["workforce"])


@router.post("/bans", status_code=201, response_model=BanRead)
async def issue_ban(
    body: BanCreate,
    session: SessionDep,
    caller: Banner,
    workforce: WorkforceDep,
    purpose: PurposeDep,
    request_id: RequestIdDep,
    response: Response,
) -> BanRead:
    """终身禁入: ends every active employment of the person at once and notifies each employer."""
    ban = await bans.issue_ban_from_request(session=session, workforce=workforce, caller=caller, data=body)
    response.headers["Location"] = f"/v1/bans/{ban.id}"
    return await bans.ban_read(
        session=session, workforce=workforce, caller=caller, ban=ban, purpose=purpose, request_id=request_id
    )


@router.get("/bans/{ban_id}", response_model=BanRead)
async def read_ban(
    ban_id: IdPath,
    session: SessionDep,
    caller: Reader,
    workforce: WorkforceDep,
    purpose: PurposeDep,
    request_id: RequestIdDep,
) -> BanRead:
    ban = await bans.get_visible_ban(session=session, caller=caller, ban_id=ban_id)
    return await bans.ban_read(
        session=session, workforce=workforce, caller=caller, ban=ban, purpose=purpose, request_id=request_id
    )


@router.post("/bans/{ban_id}/rescind", response_model=BanRead)
@idempotent(200)
async def rescind_ban(
    ban_id: IdPath,
    body: BanRescind,
    session: SessionDep,
    caller: Banner,
    workforce: WorkforceDep,
    request_id: RequestIdDep,
) -> BanRead:
    """A ban is never deleted; a rescission with reason and authority is recorded beside it."""
    ban = await bans.get_visible_ban(session=session, caller=caller, ban_id=ban_id)
    ban = await bans.rescind_ban(session=session, caller=caller, ban=ban, data=body)
    # purpose=None: the reply is masked, so the stored replay holds no ID number either.
    return await bans.ban_read(
        session=session, workforce=workforce, caller=caller, ban=ban, purpose=None, request_id=request_id
    )


@router.post("/bans/{ban_id}/notifications/{facility_id}/acknowledge", response_model=BanNotificationRead)
async def acknowledge_ban_notification(
    ban_id: IdPath, facility_id: IdPath, session: SessionDep, caller: Writer, workforce: WorkforceDep
) -> BanNotificationRead:
    """The employer confirms it was told (acknowledging twice changes nothing); unacknowledged past
    the deadline, its district is told."""
    return await bans.acknowledge(
        session=session, workforce=workforce, caller=caller, ban_id=ban_id, facility_id=facility_id
    )


@router.post("/ban-checks", response_model=BanCheckResult)
async def ban_check(
    body: BanCheckRequest,
    request: Request,
    caller: AuthenticatedDep,
    workforce: WorkforceDep,
    purpose: PurposeDep,
    request_id: RequestIdDep,
) -> BanCheckResult:
    """Is this person banned? Every check is audited, refused ones too; never fails open."""
    return await ban_checks.check_ban(
        trips=request.app.state.ban_trips,
        audit=request.app.state.check_audit,
        workforce=workforce,
        caller=caller,
        id_number=body.id_number,
        purpose=purpose,
        request_id=request_id,
    )


@router.get("/compliance/ban-notifications", response_model=Page[BanNotificationRead])
async def ban_notifications(
    session: SessionDep,
    caller: Reader,
    workforce: WorkforceDep,
    page: PageDep,
    pending: bool = True,
) -> Page[BanNotificationRead]:
    """Ban notifications of the facilities the caller may see, newest first; by default those not yet
    acknowledged."""
    return await bans.list_notifications(
        session=session, workforce=workforce, caller=caller, pending_only=pending, page=page
    )
