"""registry's domain rules. Keyword-only; flush, never commit; events through the outbox."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.errors import FacilityNotFound
from services.registry.events import FacilitySubmitted
from services.registry.models import District, Facility, Town
from services.registry.schemas import (
    Capacity,
    DistrictRead,
    FacilityCreate,
    FacilityRead,
    FacilityStatus,
    TownRead,
)
from shared.errors import invalid
from shared.events.outbox import emit
from shared.identity import ClientKind, Identity


async def list_divisions(*, session: AsyncSession) -> list[DistrictRead]:
    districts = (await session.execute(select(District).order_by(District.code))).scalars().all()
    towns = (await session.execute(select(Town).order_by(Town.code))).scalars().all()
    by_district: dict[str, list[TownRead]] = {d.code: [] for d in districts}
    for town in towns:
        by_district[town.district_code].append(
            TownRead(code=town.code, name=town.name, town_type=town.town_type, name_variant=town.name_variant)
        )
    return [
        DistrictRead(
            code=d.code,
            name=d.name,
            pinyin=d.pinyin,
            is_central_city=d.is_central_city,
            towns=by_district[d.code],
        )
        for d in districts
    ]


async def submit_facility(*, session: AsyncSession, caller: Identity, data: FacilityCreate) -> FacilityRead:
    """An application (申办): stored as `submitted` and announced to the other services."""
    town = await session.get(Town, data.town_code)
    if town is None:
        raise invalid("town_code", "is not a 街镇 or other unit of Shanghai (see GET /v1/divisions)")
    now = datetime.now(UTC)
    facility = Facility(
        id=str(uuid.uuid4()),
        name=data.name,
        kind=data.kind.value,
        inclusive=data.inclusive,
        has_nursery_class=data.has_nursery_class,
        town_code=town.code,
        district_code=town.district_code,
        address=data.address,
        lat=data.lat,
        lon=data.lon,
        operator_name=data.operator_name,
        service_modes=[m.value for m in data.service_modes],
        capacity_infant=data.capacity.infant,
        capacity_toddler=data.capacity.toddler,
        capacity_preschool=data.capacity.preschool,
        status=FacilityStatus.submitted.value,
        # An operator's own application stays its own: it may read and edit it from now on.
        owner_client_id=caller.client_id if caller.kind == ClientKind.operator else None,
        submitted_at=now,
        updated_at=now,
    )
    session.add(facility)
    await session.flush()
    await emit(
        session,
        FacilitySubmitted(
            facility_id=facility.id,
            name=facility.name,
            kind=facility.kind,
            inclusive=facility.inclusive,
            town_code=facility.town_code,
            district_code=facility.district_code,
            status=facility.status,
            owner_client_id=facility.owner_client_id,
            submitted_at=facility.submitted_at,
        ),
    )
    return to_read(facility)


async def get_visible_facility(*, session: AsyncSession, caller: Identity, facility_id: str) -> Facility:
    """404 both when it does not exist and when the caller may not see it: never reveal existence."""
    facility = await session.get(Facility, facility_id)
    if facility is None or not caller.may_see_facility(
        facility_id=facility.id,
        district_code=facility.district_code,
        owner_client_id=facility.owner_client_id,
    ):
        raise FacilityNotFound(f"No facility {facility_id} that you may see.")
    return facility


def to_read(facility: Facility) -> FacilityRead:
    return FacilityRead(
        id=facility.id,
        name=facility.name,
        kind=facility.kind,
        inclusive=facility.inclusive,
        has_nursery_class=facility.has_nursery_class,
        town_code=facility.town_code,
        district_code=facility.district_code,
        address=facility.address,
        lat=facility.lat,
        lon=facility.lon,
        operator_name=facility.operator_name,
        service_modes=facility.service_modes,
        capacity=Capacity(
            infant=facility.capacity_infant,
            toddler=facility.capacity_toddler,
            preschool=facility.capacity_preschool,
        ),
        status=facility.status,
        license_no=facility.license_no,
        version=facility.version,
        submitted_at=facility.submitted_at,
        updated_at=facility.updated_at,
    )
