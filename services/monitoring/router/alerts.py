"""Alerts: listed newest first, read with their history, acknowledged and resolved."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring.deps import DistrictFilter, IdFilter, Paging, PathId, Reader, Writer
from services.monitoring.schemas import AlertAction, AlertDetail, AlertRead
from services.monitoring.service import alerts
from services.monitoring.service.alerts import AlertFilters
from shared.api import IfMatch, check_version, etag
from shared.clock import utcnow
from shared.export import EXPORT_RESPONSES, ExportDep
from shared.idempotency import Reply, idempotent
from shared.identity import Identity
from shared.pagination import Page, PageParams
from shared.service import SessionDep

router = APIRouter(prefix="/v1", tags=["alerts"])


@router.get("/alerts", response_model=Page[AlertRead], responses=EXPORT_RESPONSES)
async def list_alerts(
    session: SessionDep,
    caller: Reader,
    paging: Paging,
    export: ExportDep,
    facility_id: IdFilter = None,
    district_code: DistrictFilter = None,
    status: Annotated[str | None, Query(pattern=r"^(open|acknowledged|resolved|escalated)$")] = None,
    severity: Annotated[str | None, Query(pattern=r"^(low|medium|high|critical)$")] = None,
    type: Annotated[str | None, Query(max_length=48)] = None,
) -> Page[AlertRead] | Response:
    """Newest first. A district sees its district's alerts, an operator its own facilities'. With
    `Accept: text/csv` or XLSX, every alert the filters select, as a file."""
    filters = AlertFilters(
        facility_id=facility_id, district_code=district_code, status=status, severity=severity, type=type
    )

    async def page_of(session: AsyncSession, page: PageParams) -> Page[AlertRead]:
        return await alerts.list_alerts(session=session, caller=caller, filters=filters, paging=page)

    if export.wanted:
        return await export.respond(page_of, name="alerts", model=AlertRead)
    return await page_of(session, paging)


@router.get("/alerts/{alert_id}", response_model=AlertDetail)
async def get_alert(alert_id: PathId, session: SessionDep, caller: Reader) -> JSONResponse:
    alert, _ = await alerts.get_visible_alert(session=session, caller=caller, alert_id=alert_id)
    detail = await alerts.alert_detail(session=session, alert=alert)
    return JSONResponse(detail.model_dump(mode="json"), headers=etag(alert.version))


async def _move_alert(
    *,
    alert_id: PathId,
    to_status: str,
    body: AlertAction | None,
    session: SessionDep,
    caller: Identity,
    if_match: str | None,
) -> Reply:
    alert, _ = await alerts.get_visible_alert(
        session=session, caller=caller, alert_id=alert_id, for_update=True
    )
    check_version(alert.version, if_match, what="alert")
    await alerts.transition(
        session,
        alert=alert,
        to_status=to_status,
        actor=caller.client_id,
        note=(body.note if body else ""),
        now=utcnow(),
    )
    detail = await alerts.alert_detail(session=session, alert=alert)
    return Reply(detail, etag(alert.version))


@router.post("/alerts/{alert_id}/ack", response_model=AlertDetail)
@idempotent(200)
async def acknowledge_alert(
    alert_id: PathId,
    session: SessionDep,
    caller: Writer,
    body: AlertAction | None = None,
    if_match: IfMatch = None,
) -> Reply:
    """Someone is on it: open → acknowledged."""
    return await _move_alert(
        alert_id=alert_id,
        to_status="acknowledged",
        body=body,
        session=session,
        caller=caller,
        if_match=if_match,
    )


@router.post("/alerts/{alert_id}/resolve", response_model=AlertDetail)
@idempotent(200)
async def resolve_alert(
    alert_id: PathId,
    session: SessionDep,
    caller: Writer,
    body: AlertAction | None = None,
    if_match: IfMatch = None,
) -> Reply:
    """Dealt with, nothing more to do: open or acknowledged → resolved (say how in `note`)."""
    return await _move_alert(
        alert_id=alert_id,
        to_status="resolved",
        body=body,
        session=session,
        caller=caller,
        if_match=if_match,
    )
