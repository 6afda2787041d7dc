"""Employments: hiring (every check in one transaction), a facility's staff, changes of terms with
their history, the district's decision on a suspended one, ending."""

from __future__ import annotations

import json
from typing import Literal

from fastapi import APIRouter, Response
from sqlalchemy.ext.asyncio import AsyncSession

from services.workforce.deps import EmploymentDep, WorkforceDep
from services.workforce.router.common import PageDep, Reader, Writer
from services.workforce.schemas import (
    EmploymentChangeRead,
    EmploymentCreate,
    EmploymentDecision,
    EmploymentEnd,
    EmploymentRead,
    EmploymentUpdate,
)
from services.workforce.service import employment_changes, hiring, history, standing
from services.workforce.service.common import get_visible_facility
from shared.api import IdQuery, IfMatch, etag
from shared.errors import PROBLEM_JSON, error_response
from shared.export import EXPORT_RESPONSES, ExportDep
from shared.idempotency import IdempotencyDep, idempotent
from shared.pagination import Page, PageParams
from shared.service import SessionDep

router = APIRouter(prefix="/v1", tags=["workforce"])


@router.post(
    "/employments",
    status_code=201,
    response_model=EmploymentRead,
    responses={409: {"description": "banned, flagged, not approved or already employed"}},
)
async def hire(
    body: EmploymentCreate, session: SessionDep, caller: Writer, workforce: WorkforceDep, idem: IdempotencyDep
) -> Response:
    """Hire: the facility approved, the person not banned nor flagged, a valid certificate for the
    role and a valid health certificate (健康合格证明), all checked in one transaction. A refusal for a
    ban is recorded and published. The hire opens a background check with POLICE unless one is
    pending or clear on file; until it is clear the employment is `provisional` (it works under
    supervision and does not count toward the staffing ratios)."""
    if replay := await idem.replay():
        return replay
    outcome = await hiring.hire(session=session, workforce=workforce, caller=caller, data=body)
    if isinstance(outcome, hiring.HireRefused):
        refusal = error_response(outcome.problem)
        await idem.remember(
            status_code=refusal.status_code,
            body=json.loads(refusal.body),
            headers={"content-type": PROBLEM_JSON},
        )
        return refusal
    employment = await hiring.read_employment(session=session, employment=outcome)
    return await idem.respond(201, employment, {"Location": f"/v1/employments/{outcome.id}"})


@router.get("/employments", response_model=Page[EmploymentRead], responses=EXPORT_RESPONSES)
async def list_employments(
    session: SessionDep,
    caller: Reader,
    page: PageDep,
    export: ExportDep,
    facility_id: IdQuery,
    status: Literal["active", "ended"] | None = "active",
    social_insurance_paid: bool | None = None,
) -> Page[EmploymentRead] | Response:
    """A facility's staff; `social_insurance_paid=false` shows who lacks 社保. With `Accept: text/csv`
    or XLSX, the whole roster the filters select, as a file."""
    facility = await get_visible_facility(session=session, caller=caller, facility_id=facility_id)

    async def page_of(session: AsyncSession, page: PageParams) -> Page[EmploymentRead]:
        return await hiring.list_employments(
            session=session,
            facility=facility,
            status=status,
            social_insurance_paid=social_insurance_paid,
            page=page,
        )

    if export.wanted:
        return await export.respond(page_of, name="staff", model=EmploymentRead)
    return await page_of(session, page)


@router.get("/employments/{employment_id}", response_model=EmploymentRead)
async def read_employment(
    employment: EmploymentDep, session: SessionDep, _caller: Reader, response: Response
) -> EmploymentRead:
    response.headers.update(etag(employment.version))
    return await hiring.read_employment(session=session, employment=employment)


@router.patch("/employments/{employment_id}", response_model=EmploymentRead)
async def update_employment(
    employment: EmploymentDep,
    body: EmploymentUpdate,
    session: SessionDep,
    caller: Writer,
    response: Response,
    if_match: IfMatch = None,
) -> EmploymentRead:
    """Change the contract type or the social insurance (社保: paid, since when) of an active
    employment; each change is kept in its history. Send `If-Match` to be safe from overwriting
    someone else's change (412)."""
    updated = await employment_changes.update_employment(
        session=session, caller=caller, employment=employment, data=body, if_match=if_match
    )
    response.headers.update(etag(updated.version))
    return await hiring.read_employment(session=session, employment=updated)


@router.get("/employments/{employment_id}/history", response_model=Page[EmploymentChangeRead])
async def employment_history(
    employment: EmploymentDep, session: SessionDep, _caller: Reader, page: PageDep
) -> Page[EmploymentChangeRead]:
    """Every change after the hire, oldest first: standing (provisional, cleared, suspended,
    reinstated, ended), health-certificate flags, contract and social insurance."""
    return await history.list_changes(session=session, employment=employment, page=page)


@router.post("/employments/{employment_id}/decision", response_model=EmploymentRead)
@idempotent(200)
async def decide_suspended_employment(
    employment: EmploymentDep, body: EmploymentDecision, session: SessionDep, caller: Writer
) -> EmploymentRead:
    """The district's decision on an employment suspended by a flagged background check: `end` it
    or `reinstate` it. Only a district client of the employment's district decides."""
    decided = await standing.decide(session=session, caller=caller, employment=employment, data=body)
    return await hiring.read_employment(session=session, employment=decided)


@router.post("/employments/{employment_id}/end", response_model=EmploymentRead)
@idempotent(200)
async def end_employment(
    employment: EmploymentDep, body: EmploymentEnd, session: SessionDep, caller: Writer
) -> EmploymentRead:
    ended = await hiring.end_employment(session=session, caller=caller, employment=employment, data=body)
    return await hiring.read_employment(session=session, employment=ended)
