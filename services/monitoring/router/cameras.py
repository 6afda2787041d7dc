"""Cameras: registered per facility under the video system's own id, online or offline."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from services.monitoring.config import MonitoringSettings
from services.monitoring.deps import IdFilter, IngestDep, Paging, PathId, Reader, SettingsDep, Writer
from services.monitoring.models import Camera
from services.monitoring.schemas import CameraCreate, CameraRead, CameraUpdate
from services.monitoring.service import cameras
from services.monitoring.service.ingest import Ingest
from shared.api import IfMatch, etag
from shared.clock import utcnow
from shared.idempotency import Reply, idempotent
from shared.pagination import Page, make_page
from shared.service import SessionDep

router = APIRouter(prefix="/v1", tags=["cameras"])


def camera_read(camera: Camera, settings: MonitoringSettings, ingest: Ingest) -> CameraRead:
    return cameras.to_read(
        camera,
        now=utcnow(),
        offline_after=timedelta(seconds=settings.offline_after_seconds),
        heard=ingest.last_seen(camera.id),
    )


@router.post("/cameras", status_code=201, response_model=CameraRead)
@idempotent(201)
async def register_camera(
    body: CameraCreate,
    session: SessionDep,
    caller: Writer,
    settings: SettingsDep,
    ingest: IngestDep,
) -> Reply:
    """Register a facility's camera under the video system's own `external_id`."""
    camera = await cameras.register(session=session, caller=caller, data=body, now=utcnow())
    headers = {"Location": f"/v1/cameras/{camera.id}", **etag(camera.version)}
    return Reply(camera_read(camera, settings, ingest), headers)


@router.get("/cameras", response_model=Page[CameraRead])
async def list_cameras(
    session: SessionDep,
    caller: Reader,
    settings: SettingsDep,
    ingest: IngestDep,
    paging: Paging,
    facility_id: IdFilter = None,
    active: bool | None = None,
) -> Page[CameraRead]:
    found = await cameras.list_cameras(
        session=session, caller=caller, paging=paging, facility_id=facility_id, active=active
    )
    rows = [camera_read(camera, settings, ingest) for camera in found]
    return make_page(rows, limit=paging.limit, position_of=lambda c: [c.id])


@router.get("/cameras/{camera_id}", response_model=CameraRead)
async def get_camera(
    camera_id: PathId,
    session: SessionDep,
    caller: Reader,
    settings: SettingsDep,
    ingest: IngestDep,
) -> JSONResponse:
    camera = await cameras.get_visible_camera(session=session, caller=caller, camera_id=camera_id)
    read = camera_read(camera, settings, ingest)
    return JSONResponse(read.model_dump(mode="json"), headers=etag(camera.version))


@router.patch("/cameras/{camera_id}", response_model=CameraRead)
async def update_camera(
    camera_id: PathId,
    body: CameraUpdate,
    session: SessionDep,
    caller: Writer,
    settings: SettingsDep,
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
