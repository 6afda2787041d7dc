"""Incidents: report, escalate an alert, list, read with history, record the finding, and EDU's
confirmation or rejection of a district's proposed finding."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring.deps import (
    DistrictFilter,
    IdFilter,
    Paging,
    PathId,
    Reporter,
    ReportReader,
    SettingsDep,
    Writer,
)
from services.monitoring.schemas import (
    Escalation,
    FindingConfirm,
    FindingCreate,
    FindingReject,
    IncidentCategory,
    IncidentCreate,
    IncidentDetail,
    IncidentRead,
    IncidentStatus,
)
from services.monitoring.service import alerts, findings, incidents
from services.monitoring.service import incident_queries as queries
from shared.api import IfMatch, check_version, etag
from shared.clock import utcnow
from shared.export import EXPORT_RESPONSES, ExportDep
from shared.idempotency import Reply, idempotent
from shared.pagination import Page, PageParams, make_page
from shared.service import SessionDep

router = APIRouter(prefix="/v1", tags=["incidents"])


@router.post("/incidents", status_code=201, response_model=IncidentDetail)
@idempotent(201)
async def report_incident(
    body: IncidentCreate, session: SessionDep, caller: Reporter, settings: SettingsDep
) -> Reply:
    """Report an incident (突发事件). A facility reports within 2 h of an abuse, injury or illness
    outbreak and 24 h of anything else (settings): a late report is flagged, raises an alert and
    publishes `deadline.missed`. Parents report through the app about any approved facility."""
    incident = await incidents.report(
        session=session, caller=caller, data=body, settings=settings, now=utcnow()
    )
    headers = {"Location": f"/v1/incidents/{incident.id}", **etag(incident.version)}
    return Reply(await queries.to_detail(session, incident), headers)


@router.post("/alerts/{alert_id}/escalate", status_code=201, response_model=IncidentDetail, tags=["alerts"])
@idempotent(201)
async def escalate_alert(
    alert_id: PathId,
    body: Escalation,
    session: SessionDep,
    caller: Writer,
    settings: SettingsDep,
    if_match: IfMatch = None,
) -> Reply:
    """Turn an open or acknowledged alert into an incident; the alert becomes `escalated` (409 if it
    is already resolved or escalated)."""
    alert, facility = await alerts.get_visible_alert(
        session=session, caller=caller, alert_id=alert_id, for_update=True
    )
    check_version(alert.version, if_match, what="alert")
    incident = await incidents.escalate(
        session=session,
        caller=caller,
        alert=alert,
        facility=facility,
        data=body,
        settings=settings,
        now=utcnow(),
    )
    headers = {"Location": f"/v1/incidents/{incident.id}", **etag(incident.version)}
    return Reply(await queries.to_detail(session, incident), headers)


@router.get("/incidents", response_model=Page[IncidentRead], responses=EXPORT_RESPONSES)
async def list_incidents(
    session: SessionDep,
    caller: ReportReader,
    paging: Paging,
    export: ExportDep,
    facility_id: IdFilter = None,
    district_code: DistrictFilter = None,
    status: IncidentStatus | None = None,
    category: IncidentCategory | None = None,
) -> Page[IncidentRead] | Response:
    """Newest report first. A district sees its district's, an operator its facilities', a parent
    only its own reports. With `Accept: text/csv` or XLSX, every one the filters select, as a file."""
    filters = queries.IncidentFilters(
        facility_id=facility_id,
        district_code=district_code,
        status=status.value if status else None,
        category=category.value if category else None,
    )

    async def page_of(session: AsyncSession, page: PageParams) -> Page[IncidentRead]:
        rows = await queries.list_incidents(session=session, caller=caller, filters=filters, page=page)
        items = [queries.to_read(i) for i in rows]
        return make_page(items, limit=page.limit, position_of=lambda i: [i.reported_at.isoformat(), i.id])

    if export.wanted:
        return await export.respond(page_of, name="incidents", model=IncidentRead)
    return await page_of(session, paging)


@router.get("/incidents/{incident_id}", response_model=IncidentDetail)
async def read_incident(incident_id: PathId, session: SessionDep, caller: ReportReader) -> JSONResponse:
    incident, _ = await queries.get_visible_incident(session=session, caller=caller, incident_id=incident_id)
    detail = await queries.to_detail(session, incident)
    return JSONResponse(detail.model_dump(mode="json"), headers=etag(incident.version))


@router.post("/incidents/{incident_id}/findings", response_model=IncidentDetail)
@idempotent(200)
async def record_finding(
    incident_id: PathId,
    body: FindingCreate,
    session: SessionDep,
    caller: Writer,
    if_match: IfMatch = None,
) -> Reply:
    """The district's (or the EDU bureau's) finding. Only people employed at the incident's facility
    at or after the incident may be named (422 naming each other one). A district's confirmed abuse
    is `proposed`: it bans nobody until EDU confirms it. Anything else is final at once (409 after);
    a confirmed one publishes `incident.confirmed`, on which the workforce bans the named for life."""
    incident, facility = await queries.get_visible_incident(
        session=session, caller=caller, incident_id=incident_id, for_update=True
    )
    check_version(incident.version, if_match, what="incident")
    incident = await findings.record_finding(
        session=session, caller=caller, incident=incident, facility=facility, data=body, now=utcnow()
    )
    return Reply(await queries.to_detail(session, incident), etag(incident.version))


@router.post("/incidents/{incident_id}/findings/confirm", response_model=IncidentDetail)
@idempotent(200)
async def confirm_finding(
    incident_id: PathId,
    body: FindingConfirm,
    session: SessionDep,
    caller: Writer,
    if_match: IfMatch = None,
) -> Reply:
    """EDU confirms the district's proposed finding (403 for anyone else; 409 when none awaits): the
    incident is confirmed and `incident.confirmed` carries the named people to the workforce."""
    incident, _ = await queries.get_visible_incident(
        session=session, caller=caller, incident_id=incident_id, for_update=True
    )
    check_version(incident.version, if_match, what="incident")
    incident = await findings.confirm_finding(
        session=session, caller=caller, incident=incident, data=body, now=utcnow()
    )
    return Reply(await queries.to_detail(session, incident), etag(incident.version))


@router.post("/incidents/{incident_id}/findings/reject", response_model=IncidentDetail)
@idempotent(200)
async def reject_finding(
    incident_id: PathId,
    body: FindingReject,
    session: SessionDep,
    caller: Writer,
    if_match: IfMatch = None,
) -> Reply:
    """EDU rejects the district's proposed finding, with its reason: nobody is banned, the proposal
    stays in the incident's findings, and the incident is `reported` again, open for a new finding."""
    incident, _ = await queries.get_visible_incident(
        session=session, caller=caller, incident_id=incident_id, for_update=True
    )
    check_version(incident.version, if_match, what="incident")
    incident = await findings.reject_finding(
        session=session, caller=caller, incident=incident, data=body, now=utcnow()
    )
    return Reply(await queries.to_detail(session, incident), etag(incident.version))
