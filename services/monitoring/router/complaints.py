"""Complaints: lodge (parents, the public without a token, bureaus), follow by reference and code,
list and read (complainant masked; unmasked for the handling district that says why), acknowledge
and answer (the district or EDU)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring.deps import (
    DistrictFilter,
    IdFilter,
    Paging,
    PathId,
    ReportReader,
    Writer,
)
from services.monitoring.schemas import (
    ComplaintAnswer,
    ComplaintCreate,
    ComplaintLookup,
    ComplaintProgress,
    ComplaintRead,
    ComplaintReceipt,
    ComplaintStatus,
)
from services.monitoring.schemas.complaints import Code, Reference
from services.monitoring.service import complaints
from services.monitoring.service.complaint_access import (
    Complaints,
    audit_unmasked,
    progress,
    reveals_complainant,
    to_read,
)
from shared.api import IfMatch, check_version, etag
from shared.clock import as_utc, utcnow
from shared.export import EXPORT_RESPONSES, ExportDep
from shared.idempotency import Reply, idempotent
from shared.identity import CallerDep, PurposeDep, RequestIdDep
from shared.pagination import Page, PageParams, make_page
from shared.service import SessionDep

router = APIRouter(prefix="/v1", tags=["complaints"])


async def desk_of(request: Request) -> Complaints:
    return request.app.state.complaints


DeskDep = Annotated[Complaints, Depends(desk_of)]


# Not idempotent by key: anonymous callers share one identity, and a stored reply would hold the code.
@router.post("/complaints", status_code=201, response_model=ComplaintReceipt)
async def lodge_complaint(
    body: ComplaintCreate, session: SessionDep, caller: CallerDep, desk: DeskDep
) -> JSONResponse:
    """Lodge a complaint (投诉) about a facility, routed to its district: by a parent's account, by
    anyone without a token (the gateway's rate limit for anonymous callers applies), or by a bureau
    for a caller of its hotline. The name and phone are optional, sealed, and only the handling
    district sees them. Without an account, the reply's `code` (shown once, never stored) and
    `reference` are how the complainant follows it (`GET /v1/complaints/lookup`)."""
    lodged = await complaints.lodge(session=session, caller=caller, data=body, desk=desk, now=utcnow())
    c = lodged.complaint
    receipt = ComplaintReceipt(
        id=c.id,
        reference=c.reference,
        code=lodged.code,
        status=c.status,
        lodged_at=as_utc(c.lodged_at),
        acknowledge_due_at=as_utc(c.acknowledge_due_at),
        answer_due_at=as_utc(c.answer_due_at),
    )
    return JSONResponse(
        receipt.model_dump(mode="json"),
        status_code=201,
        headers={"Location": f"/v1/complaints/{c.id}", "Cache-Control": "no-store"},
    )


@router.get("/complaints/lookup", response_model=ComplaintProgress)
async def look_up_complaint(
    session: SessionDep,
    desk: DeskDep,
    reference: Annotated[Reference, Header(alias="X-Complaint-Reference")],
    code: Annotated[Code, Header(alias="X-Complaint-Code")],
) -> ComplaintProgress:
    """Where a complaint stands and the district's answer, for whoever holds its reference and code,
    given as headers (never in the URL, which logs keep). 404 for either one wrong."""
    complaint, facility = await complaints.look_up(session=session, reference=reference, code=code, desk=desk)
    return progress(complaint, facility)


@router.post("/complaints/lookup", response_model=ComplaintProgress)
async def look_up_complaint_by_body(
    body: ComplaintLookup, session: SessionDep, desk: DeskDep
) -> ComplaintProgress:
    """The same, with the reference and code in the body (for forms that cannot set headers)."""
    complaint, facility = await complaints.look_up(
        session=session, reference=body.reference, code=body.code, desk=desk
    )
    return progress(complaint, facility)


@router.get("/complaints", response_model=Page[ComplaintRead], responses=EXPORT_RESPONSES)
async def list_complaints(
    session: SessionDep,
    caller: ReportReader,
    paging: Paging,
    export: ExportDep,
    desk: DeskDep,
    facility_id: IdFilter = None,
    district_code: DistrictFilter = None,
    status: ComplaintStatus | None = None,
) -> Page[ComplaintRead] | Response:
    """Newest first. A district sees its district's, the city's bureaus every one, an operator those
    about its facilities (never who complained), a parent its own. Complainants are masked in lists."""
    filters = complaints.ComplaintFilters(
        facility_id=facility_id, district_code=district_code, status=status.value if status else None
    )

    async def page_of(session: AsyncSession, page: PageParams) -> Page[ComplaintRead]:
        rows = await complaints.list_complaints(session=session, caller=caller, filters=filters, page=page)
        items = [to_read(c, f, desk=desk, caller=caller) for c, f in rows]
        return make_page(items, limit=page.limit, position_of=lambda c: [c.lodged_at.isoformat(), c.id])

    if export.wanted:
        return await export.respond(page_of, name="complaints", model=ComplaintRead)
    return await page_of(session, paging)


@router.get("/complaints/{complaint_id}", response_model=ComplaintRead)
async def read_complaint(
    complaint_id: PathId,
    session: SessionDep,
    caller: ReportReader,
    desk: DeskDep,
    purpose: PurposeDep,
    request_id: RequestIdDep,
) -> JSONResponse:
    """Masked; the handling district's client with `monitoring:pii` that sends `X-Purpose` sees the
    complainant's name and phone, and the read is audited in the same transaction."""
    complaint, facility = await complaints.get_visible_complaint(
        session=session, caller=caller, complaint_id=complaint_id
    )
    unmasked = reveals_complainant(caller, complaint, purpose) and bool(
        complaint.name_encrypted or complaint.phone_encrypted
    )
    if unmasked:
        assert purpose is not None
        audit_unmasked(session, caller=caller, complaint=complaint, purpose=purpose, request_id=request_id)
    read = to_read(complaint, facility, desk=desk, caller=caller, unmasked=unmasked)
    return JSONResponse(
        read.model_dump(mode="json"), headers=etag(complaint.version) | {"Cache-Control": "no-store"}
    )


@router.post("/complaints/{complaint_id}/acknowledge", response_model=ComplaintRead)
@idempotent(200)
async def acknowledge_complaint(
    complaint_id: PathId, session: SessionDep, caller: Writer, desk: DeskDep, if_match: IfMatch = None
) -> Reply:
    """The district (or EDU) has it in hand: within 1 working day of lodging, or it escalates."""
    complaint, facility = await complaints.get_visible_complaint(
        session=session, caller=caller, complaint_id=complaint_id, for_update=True
    )
    check_version(complaint.version, if_match, what="complaint")
    complaint = await complaints.acknowledge(
        session=session, caller=caller, complaint=complaint, now=utcnow()
    )
    return Reply(to_read(complaint, facility, desk=desk, caller=caller), etag(complaint.version))


@router.post("/complaints/{complaint_id}/answer", response_model=ComplaintRead)
@idempotent(200)
async def answer_complaint(
    complaint_id: PathId,
    body: ComplaintAnswer,
    session: SessionDep,
    caller: Writer,
    desk: DeskDep,
    if_match: IfMatch = None,
) -> Reply:
    """The district's answer, once, within 15 working days: founded, partly founded or unfounded
    (409 after). The complainant reads it; a founded or partly founded one goes on the facility's
    credit record (`complaint.answered`)."""
    complaint, facility = await complaints.get_visible_complaint(
        session=session, caller=caller, complaint_id=complaint_id, for_update=True
    )
    check_version(complaint.version, if_match, what="complaint")
    complaint = await complaints.answer(
        session=session, caller=caller, complaint=complaint, data=body, now=utcnow()
    )
    return Reply(to_read(complaint, facility, desk=desk, caller=caller), etag(complaint.version))
