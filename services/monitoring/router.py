"""monitoring's HTTP layer for the watch: cameras, CCTV event batches and alerts."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import and_, or_, select

from services.monitoring.config import MonitoringSettings
from services.monitoring.errors import BatchTooLarge
from services.monitoring.models import Alert, AlertTransition, Camera, Facility
from services.monitoring.schemas import (
    AlertAction,
    AlertDetail,
    AlertRead,
    AlertTransitionRead,
    CameraCreate,
    CameraRead,
    CameraUpdate,
    CctvEventIn,
    IngestReply,
)
from services.monitoring.service import alerts, cameras
from services.monitoring.service.common import as_utc, check_version, utcnow, visible_facilities_clause
from services.monitoring.service.ingest import Ingest
from shared.errors import BadRequest, invalid
from shared.idempotency import IdempotencyDep
from shared.identity import Identity, scope_guard
from shared.pagination import Page, PageParams, make_page, page_params
from shared.service import SessionDep

router = APIRouter(prefix="/v1")
Reader = Annotated[Identity, scope_guard("monitoring:read")]
Writer = Annotated[Identity, scope_guard("monitoring:write")]
Sender = Annotated[Identity, scope_guard("monitoring:ingest")]
IfMatch = Annotated[str | None, Header(alias="If-Match", max_length=200)]
Paging = Annotated[PageParams, Depends(page_params)]
DistrictCode = Annotated[str | None, Query(pattern=r"^\d{6}$")]
FacilityFilter = Annotated[str | None, Query(max_length=64)]
PathId = Annotated[str, Path(max_length=64)]


def settings_of(request: Request) -> MonitoringSettings:
    return request.app.state.settings


def ingest_of(request: Request) -> Ingest:
    return request.app.state.ingest


Settings = Annotated[MonitoringSettings, Depends(settings_of)]
IngestDep = Annotated[Ingest, Depends(ingest_of)]


def etag(version: int) -> dict[str, str]:
    return {"ETag": f'"{version}"'}


# ---- cameras ---------------------------------------------------------------------------------


def camera_read(camera: Camera, settings: MonitoringSettings, ingest: Ingest) -> CameraRead:
    return cameras.to_read(
        camera,
        now=utcnow(),
        offline_after=timedelta(seconds=settings.offline_after_seconds),
        heard=ingest.last_seen(camera.id),
    )


@router.post("/cameras", status_code=201, response_model=CameraRead, tags=["cameras"])
async def register_camera(
    body: CameraCreate,
    session: SessionDep,
    caller: Writer,
    idem: IdempotencyDep,
    settings: Settings,
    ingest: IngestDep,
) -> JSONResponse:
    """Register a facility's camera under the video system's own `external_id`."""
    if replay := await idem.replay():
        return replay
    camera = await cameras.register(session=session, caller=caller, data=body, now=utcnow())
    headers = {"Location": f"/v1/cameras/{camera.id}", **etag(camera.version)}
    return await idem.respond(201, camera_read(camera, settings, ingest), headers)


@router.get("/cameras", response_model=Page[CameraRead], tags=["cameras"])
async def list_cameras(
    session: SessionDep,
    caller: Reader,
    settings: Settings,
    ingest: IngestDep,
    paging: Paging,
    facility_id: FacilityFilter = None,
    active: bool | None = None,
) -> Page[CameraRead]:
    query = (
        select(Camera)
        .join(Facility, Facility.id == Camera.facility_id)
        .where(visible_facilities_clause(caller))
        .order_by(Camera.id)
        .limit(paging.limit + 1)
    )
    if facility_id is not None:
        query = query.where(Camera.facility_id == facility_id)
    if active is not None:
        query = query.where(Camera.active == active)
    if paging.after:
        query = query.where(Camera.id > str(paging.after[0]))
    rows = [camera_read(c, settings, ingest) for c in (await session.execute(query)).scalars()]
    return make_page(rows, limit=paging.limit, position_of=lambda c: [c.id])


@router.get("/cameras/{camera_id}", response_model=CameraRead, tags=["cameras"])
async def get_camera(
    camera_id: PathId,
    session: SessionDep,
    caller: Reader,
    settings: Settings,
    ingest: IngestDep,
) -> JSONResponse:
    camera = await cameras.get_visible_camera(session=session, caller=caller, camera_id=camera_id)
    read = camera_read(camera, settings, ingest)
    return JSONResponse(read.model_dump(mode="json"), headers=etag(camera.version))


@router.patch("/cameras/{camera_id}", response_model=CameraRead, tags=["cameras"])
async def update_camera(
    camera_id: PathId,
    body: CameraUpdate,
    session: SessionDep,
    caller: Writer,
    settings: Settings,
    ingest: IngestDep,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Move, relabel or retire a camera (`active: false` stops its offline alerts)."""
    camera = await cameras.get_visible_camera(
        session=session, caller=caller, camera_id=camera_id, for_update=True
    )
    camera = await cameras.update(session=session, camera=camera, data=body, if_match=if_match)
    ingest.directory.forget_camera(camera.id)
    read = camera_read(camera, settings, ingest)
    return JSONResponse(read.model_dump(mode="json"), headers=etag(camera.version))


# ---- CCTV events -----------------------------------------------------------------------------

_EVENT_SCHEMA = CctvEventIn.model_json_schema()
assert "$defs" not in _EVENT_SCHEMA, "keep CctvEventIn self-contained: its schema is inlined below"
# Each item is judged on its own: one that is not a valid event is listed in `rejected` (by index)
# and the rest are stored, so the batch as a whole accepts any item. Said so here, with the shape a
# valid event has, instead of promising a refusal the service does not make.
_BATCH_SCHEMA: dict[str, Any] = {
    "type": "array",
    "maxItems": 1000,
    "items": {
        "anyOf": [
            _EVENT_SCHEMA,
            {"description": "Anything else: not stored, listed in the reply's `rejected` with its errors"},
        ]
    },
}


@router.post(
    "/cctv-events",
    response_model=IngestReply,
    tags=["cctv"],
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": _BATCH_SCHEMA}}}
    },
    responses={413: {"description": "More events than the batch limit (1,000)"}},
)
async def ingest_events(
    request: Request, caller: Sender, settings: Settings, ingest: IngestDep
) -> IngestReply:
    """A batch of up to 1,000 events. Each is validated on its own: bad ones are listed by index and
    the rest are stored. A re-sent `event_id` is counted in `duplicates` and ignored. The reply
    comes only after the events are committed."""
    body = await request.body()
    if len(body) > settings.max_batch_bytes:
        raise BatchTooLarge(f"A batch is at most {settings.max_batch_bytes} bytes.")
    try:
        items = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadRequest("The body is not valid JSON.") from None
    if not isinstance(items, list):
        raise invalid("body", "is a JSON array of events")
    if len(items) > settings.max_batch_events:
        raise BatchTooLarge(
            f"{len(items)} events; a batch holds at most {settings.max_batch_events}: split it."
        )
    return await ingest.accept(items, caller)


# ---- alerts ----------------------------------------------------------------------------------


@router.get("/alerts", response_model=Page[AlertRead], tags=["alerts"])
async def list_alerts(
    session: SessionDep,
    caller: Reader,
    paging: Paging,
    facility_id: FacilityFilter = None,
    district_code: DistrictCode = None,
    status: Annotated[str | None, Query(pattern=r"^(open|acknowledged|resolved|escalated)$")] = None,
    severity: Annotated[str | None, Query(pattern=r"^(low|medium|high|critical)$")] = None,
    type: Annotated[str | None, Query(max_length=48)] = None,
) -> Page[AlertRead]:
    """Newest first. A district sees its district's alerts, an operator its own facilities'."""
    query = (
        select(Alert)
        .join(Facility, Facility.id == Alert.facility_id)
        .where(visible_facilities_clause(caller))
        .order_by(Alert.raised_at.desc(), Alert.id.desc())
        .limit(paging.limit + 1)
    )
    for column, value in (
        (Alert.facility_id, facility_id),
        (Alert.district_code, district_code),
        (Alert.status, status),
        (Alert.severity, severity),
        (Alert.type, type),
    ):
        if value is not None:
            query = query.where(column == value)
    if paging.after:
        if len(paging.after) != 2:
            raise invalid("cursor", "is not a cursor this API returned")
        try:
            raised_at = datetime.fromisoformat(str(paging.after[0]))
        except ValueError:
            raise invalid("cursor", "is not a cursor this API returned") from None
        last_id = str(paging.after[1])
        query = query.where(
            or_(Alert.raised_at < raised_at, and_(Alert.raised_at == raised_at, Alert.id < last_id))
        )
    rows = [
        AlertRead.model_validate(a, from_attributes=True) for a in (await session.execute(query)).scalars()
    ]
    for row in rows:
        row.raised_at, row.first_at, row.last_at = (
            as_utc(row.raised_at),
            as_utc(row.first_at),
            as_utc(row.last_at),
        )
    return make_page(rows, limit=paging.limit, position_of=lambda a: [a.raised_at.isoformat(), a.id])


async def alert_detail(session: SessionDep, alert: Alert) -> AlertDetail:
    history = (
        await session.execute(
            select(AlertTransition)
            .where(AlertTransition.alert_id == alert.id)
            .order_by(AlertTransition.at, AlertTransition.id)
        )
    ).scalars()
    read = AlertRead.model_validate(alert, from_attributes=True)
    return AlertDetail(
        **read.model_dump(exclude={"raised_at", "first_at", "last_at"}),
        raised_at=as_utc(alert.raised_at),
        first_at=as_utc(alert.first_at),
        last_at=as_utc(alert.last_at),
        history=[
            AlertTransitionRead(
                from_status=t.from_status, to_status=t.to_status, actor=t.actor, note=t.note, at=as_utc(t.at)
            )
            for t in history
        ],
    )


@router.get("/alerts/{alert_id}", response_model=AlertDetail, tags=["alerts"])
async def get_alert(alert_id: PathId, session: SessionDep, caller: Reader) -> JSONResponse:
    alert, _ = await alerts.get_visible_alert(session=session, caller=caller, alert_id=alert_id)
    detail = await alert_detail(session, alert)
    return JSONResponse(detail.model_dump(mode="json"), headers=etag(alert.version))


async def _move_alert(
    *,
    alert_id: PathId,
    to_status: str,
    body: AlertAction | None,
    session: SessionDep,
    caller: Identity,
    idem: IdempotencyDep,
    if_match: str | None,
) -> JSONResponse:
    if replay := await idem.replay():
        return replay
    alert, _ = await alerts.get_visible_alert(
        session=session, caller=caller, alert_id=alert_id, for_update=True
    )
    check_version("alert", alert.version, if_match)
    await alerts.transition(
        session,
        alert=alert,
        to_status=to_status,
        actor=caller.client_id,
        note=(body.note if body else ""),
        now=utcnow(),
    )
    return await idem.respond(200, await alert_detail(session, alert), etag(alert.version))


@router.post("/alerts/{alert_id}/ack", response_model=AlertDetail, tags=["alerts"])
async def acknowledge_alert(
    alert_id: PathId,
    session: SessionDep,
    caller: Writer,
    idem: IdempotencyDep,
    body: AlertAction | None = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Someone is on it: open → acknowledged."""
    return await _move_alert(
        alert_id=alert_id,
        to_status="acknowledged",
        body=body,
        session=session,
        caller=caller,
        idem=idem,
        if_match=if_match,
    )


@router.post("/alerts/{alert_id}/resolve", response_model=AlertDetail, tags=["alerts"])
async def resolve_alert(
    alert_id: PathId,
    session: SessionDep,
    caller: Writer,
    idem: IdempotencyDep,
    body: AlertAction | None = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Dealt with, nothing more to do: open or acknowledged → resolved (say how in `note`)."""
    return await _move_alert(
        alert_id=alert_id,
        to_status="resolved",
        body=body,
        session=session,
        caller=caller,
        idem=idem,
        if_match=if_match,
    )
