"""Cameras: registered per facility, named by the video system's own id; online or offline from
the last event or heartbeat heard."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring.errors import CameraNotFound
from services.monitoring.events import CameraRegistered
from services.monitoring.models import Camera, Facility
from services.monitoring.schemas import CameraCreate, CameraRead, CameraUpdate
from services.monitoring.service.common import get_visible_facility, may_see, visible_facilities_clause
from shared.api import check_version
from shared.clock import as_utc, new_id
from shared.errors import Conflict
from shared.events.outbox import emit
from shared.i18n import tr
from shared.identity import Identity
from shared.pagination import PageParams

NO_CAMERAS_FOR = frozenset({"rejected", "closed"})


def to_read(
    camera: Camera, *, now: datetime, offline_after: timedelta, heard: tuple[datetime, str] | None
) -> CameraRead:
    last_seen = as_utc(camera.last_seen_at) if camera.last_seen_at else None
    last_type = camera.last_event_type
    if heard is not None and (last_seen is None or heard[0] > last_seen):
        last_seen, last_type = heard  # heard by this process, not written yet
    if last_seen is None:
        status = "never_seen"
    else:
        status = "online" if now - last_seen <= offline_after else "offline"
    return CameraRead(
        id=camera.id,
        facility_id=camera.facility_id,
        location=camera.location,
        vendor=camera.vendor,
        external_id=camera.external_id,
        label=camera.label,
        active=camera.active,
        status=status,
        last_seen_at=last_seen,
        last_event_type=last_type,
        registered_at=as_utc(camera.registered_at),
        version=camera.version,
    )


async def register(*, session: AsyncSession, caller: Identity, data: CameraCreate, now: datetime) -> Camera:
    facility = await get_visible_facility(session=session, caller=caller, facility_id=data.facility_id)
    if facility.status in NO_CAMERAS_FOR:
        raise Conflict(
            tr(
                "The facility is {status}: no cameras can be registered for it.",
                status=facility.status,
            )
        )
    taken = await session.execute(
        select(Camera.id).where(Camera.facility_id == facility.id, Camera.external_id == data.external_id)
    )
    if taken.first() is not None:
        raise Conflict(
            tr(
                "This facility already has a camera with external_id {external_id!r}.",
                external_id=data.external_id,
            )
        )
    camera = Camera(
        id=new_id(),
        facility_id=facility.id,
        location=data.location.value,
        vendor=data.vendor,
        external_id=data.external_id,
        label=data.label,
        registered_by=caller.client_id,
        registered_at=now,
    )
    session.add(camera)
    await session.flush()
    await emit(
        session,
        CameraRegistered(
            camera_id=camera.id,
            facility_id=facility.id,
            district_code=facility.district_code,
            location=camera.location,
            vendor=camera.vendor,
            registered_at=now,
        ),
    )
    return camera


async def get_visible_camera(
    *, session: AsyncSession, caller: Identity, camera_id: str, for_update: bool = False
) -> Camera:
    query = (
        select(Camera, Facility)
        .join(Facility, Facility.id == Camera.facility_id)
        .where(Camera.id == camera_id)
    )
    if for_update:
        query = query.with_for_update(of=Camera)
    row = (await session.execute(query)).first()
    if row is None or not may_see(caller, row.Facility):
        raise CameraNotFound(tr("No camera {camera_id} that you may see.", camera_id=camera_id))
    return row.Camera


async def update(
    *, session: AsyncSession, camera: Camera, data: CameraUpdate, if_match: str | None
) -> Camera:
    check_version(camera.version, if_match, what="camera")
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    for field, value in changes.items():
        setattr(camera, field, value.value if hasattr(value, "value") else value)
    if changes:
        camera.version += 1
    await session.flush()
    return camera


async def list_cameras(
    *,
    session: AsyncSession,
    caller: Identity,
    paging: PageParams,
    facility_id: str | None = None,
    active: bool | None = None,
) -> list[Camera]:
    """The cameras of the facilities the caller may see, by id, one more than the page holds."""
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
    return list((await session.execute(query)).scalars())
