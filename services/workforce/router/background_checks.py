"""Background checks (资格审查): requested by employers, answered and resolved by the police."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter

from services.workforce.deps import PractitionerDep, WorkforceDep
from services.workforce.router.common import PageDep, Reader, Writer
from services.workforce.schemas import (
    BackgroundCheckAnswer,
    BackgroundCheckCreate,
    BackgroundCheckRead,
    BackgroundCheckResolve,
)
from services.workforce.service import background_checks, standing
from shared.api import IdPath
from shared.idempotency import idempotent
from shared.pagination import Page
from shared.service import SessionDep

router = APIRouter(prefix="/v1", tags=["workforce"])


@router.post(
    "/practitioners/{practitioner_id}/background-checks", status_code=201, response_model=BackgroundCheckRead
)
@idempotent(201)
async def request_background_check(
    practitioner: PractitionerDep,
    body: BackgroundCheckCreate,
    session: SessionDep,
    caller: Writer,
) -> BackgroundCheckRead:
    """资格审查: a request the police answer through the API."""
    check = await background_checks.request_background_check(
        session=session, caller=caller, practitioner=practitioner, data=body
    )
    return background_checks.check_read(check)


@router.get("/practitioners/{practitioner_id}/background-checks", response_model=Page[BackgroundCheckRead])
async def list_background_checks(
    practitioner: PractitionerDep, session: SessionDep, _caller: Reader, page: PageDep
) -> Page[BackgroundCheckRead]:
    """The practitioner's background checks, newest request first."""
    return await background_checks.list_checks(session=session, practitioner=practitioner, page=page)


@router.post(
    "/practitioners/{practitioner_id}/background-checks/{check_id}/answer", response_model=BackgroundCheckRead
)
@idempotent(200)
async def answer_background_check(
    practitioner: PractitionerDep,
    check_id: IdPath,
    body: BackgroundCheckAnswer,
    session: SessionDep,
    caller: Writer,
    workforce: WorkforceDep,
) -> BackgroundCheckRead:
    """POLICE: clear or flagged. Clear lifts the provisional standing of the employments waiting on
    the check; flagged suspends every active employment of the person until their district decides,
    and the person cannot be hired until the flag is resolved."""
    check = await background_checks.get_check(session=session, practitioner=practitioner, check_id=check_id)
    check = await background_checks.answer_background_check(
        session=session, caller=caller, check=check, data=body
    )
    await standing.after_answer(session=session, workforce=workforce, check=check, by=caller.client_id)
    return background_checks.check_read(check)


@router.post(
    "/practitioners/{practitioner_id}/background-checks/{check_id}/resolve",
    response_model=BackgroundCheckRead,
)
@idempotent(200)
async def resolve_background_check(
    practitioner: PractitionerDep,
    check_id: IdPath,
    body: BackgroundCheckResolve,
    session: SessionDep,
    caller: Writer,
) -> BackgroundCheckRead:
    check = await background_checks.get_check(session=session, practitioner=practitioner, check_id=check_id)
    check = await background_checks.resolve_background_check(
        session=session, caller=caller, check=check, data=body
    )
    return background_checks.check_read(check)


@router.get("/compliance/background-checks", response_model=Page[BackgroundCheckRead])
async def background_check_queue(
    session: SessionDep,
    caller: Reader,
    page: PageDep,
    status: Literal["pending", "clear", "flagged", "resolved"] = "pending",
) -> Page[BackgroundCheckRead]:
    """The police's queue of background checks (each also announced as `background_check.requested`)."""
    return await background_checks.police_queue(session=session, caller=caller, status=status, page=page)
