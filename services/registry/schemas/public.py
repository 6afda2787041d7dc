"""Registry's bodies: public."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from services.registry.schemas.common import (
    Capacity,
    FacilityKind,
    FacilityStatus,
    OpeningHours,
    PerAgeClass,
    ServiceMode,
)
from services.registry.schemas.fees import PublicFees
from services.registry.schemas.quality import CreditEntryRead, InspectionRead


class PublicFacility(BaseModel):
    """What anyone may read about a licensed facility (信息公开): approved, or suspended or closed
    (which stay on the public pages with their status and credit record)."""

    id: str
    name: str
    kind: FacilityKind
    inclusive: bool
    has_nursery_class: bool
    district_code: str
    town_code: str
    address: str
    lat: float
    lon: float
    service_modes: list[ServiceMode]
    opening_hours: list[OpeningHours]
    capacity: Capacity
    free_places: PerAgeClass
    license_no: str | None
    approved_at: datetime | None
    grade: str | None
    is_demonstration: bool
    status: FacilityStatus = FacilityStatus.approved
    fees: PublicFees | None = Field(default=None, description="The latest fee schedule disclosed (收费公示)")
    distance_m: float | None = None


class PublicFacilityPage(PublicFacility):
    inspections: list[InspectionRead]
    credit_record: list[CreditEntryRead]
