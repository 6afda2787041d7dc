"""Public disclosure (信息公开): licensed facilities (approved, and suspended or closed ones with their
status), public fields only, no token needed."""

from __future__ import annotations

from fastapi import APIRouter, Response

from services.registry.deps import DirectoryDep, FacilityId, SettingsDep
from services.registry.models import Facility
from services.registry.router.facilities import Filters, Paging
from services.registry.schemas import (
    CreditEntryRead,
    OpeningHours,
    PublicFacility,
    PublicFacilityPage,
)
from services.registry.schemas.fees import PublicFees
from services.registry.service import credit, facilities, search
from shared.pagination import Page
from shared.service import SessionDep

public_router = APIRouter(prefix="/v1/public", tags=["public"])


def to_public(facility: Facility, distance: float | None = None) -> PublicFacility:
    return PublicFacility(
        id=facility.id,
        name=facility.name,
        kind=facility.kind,
        inclusive=facility.inclusive,
        has_nursery_class=facility.has_nursery_class,
        district_code=facility.district_code,
        town_code=facility.town_code,
        address=facility.address,
        lat=facility.lat,
        lon=facility.lon,
        service_modes=facility.service_modes,
        opening_hours=[OpeningHours.model_validate(h) for h in facility.opening_hours],
        capacity=facilities.capacity_of(facility),
        free_places=facilities.free_places_of(facility),
        license_no=facility.license_no,
        approved_at=facility.approved_at,
        grade=facility.grade,
        is_demonstration=facility.is_demonstration,
        status=facility.status,
        fees=PublicFees.model_validate(facility.fees) if facility.fees else None,
        distance_m=distance,
    )


@public_router.get("/facilities", response_model=Page[PublicFacility])
async def public_search(directory: DirectoryDep, filters: Filters, paging: Paging) -> Response:
    """Approved (operating) facilities, filtered; nearest first with `near=lat,lon` (default radius
    1,000 m). `status=suspended` or `status=closed` lists those instead."""
    page = await directory.search(caller=None, filters=filters, page=paging, public=True)
    return Response(page, media_type="application/json")


@public_router.get("/facilities/{facility_id}", response_model=PublicFacilityPage)
async def public_facility(
    facility_id: FacilityId, session: SessionDep, settings: SettingsDep
) -> PublicFacilityPage:
    """The public page: the facility, its inspections of the last years, and its credit record."""
    facility = await search.get_public_facility(session=session, facility_id=facility_id)
    inspections = await credit.inspection_history(
        session=session, facility_id=facility.id, years=settings.public_inspection_years
    )
    entries = await credit.credit_record(session=session, facility_id=facility.id)
    return PublicFacilityPage(
        **to_public(facility).model_dump(),
        inspections=inspections,
        credit_record=[credit.to_entry_read(e) for e in entries],
    )


@public_router.get("/facilities/{facility_id}/credit-record", response_model=Page[CreditEntryRead])
async def public_credit_record(
    facility_id: FacilityId, session: SessionDep, paging: Paging
) -> Page[CreditEntryRead]:
    """A licensed facility's credit entries, newest first."""
    facility = await search.get_public_facility(session=session, facility_id=facility_id)
    rows, cursor = await credit.credit_record_page(session=session, facility_id=facility.id, page=paging)
    return Page[CreditEntryRead](items=[credit.to_entry_read(e) for e in rows], next_cursor=cursor)
