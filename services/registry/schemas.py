"""registry's request and reply shapes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

# Shanghai's bounding box, with a margin for the islands of 崇明 and the coast of 金山.
SHANGHAI_LAT = (30.66, 31.88)
SHANGHAI_LON = (120.85, 122.20)

Text200 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class FacilityKind(StrEnum):
    kindergarten = "kindergarten"
    community_point = "community_point"
    workplace = "workplace"
    private = "private"


class ServiceMode(StrEnum):
    full_day = "full_day"
    half_day = "half_day"
    hourly = "hourly"


class FacilityStatus(StrEnum):
    submitted = "submitted"
    approved = "approved"
    rejected = "rejected"
    suspended = "suspended"
    closed = "closed"


class Capacity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    infant: int = Field(ge=0, le=1000, description="乳儿班 places, 6–12 months")
    toddler: int = Field(ge=0, le=1000, description="托小班 places, 12–24 months")
    preschool: int = Field(ge=0, le=1000, description="托大班 places, 24–36 months")


class FacilityCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text200
    kind: FacilityKind
    inclusive: bool
    has_nursery_class: bool = False
    town_code: Annotated[str, StringConstraints(pattern=r"^\d{9}$")]
    address: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
    lat: float = Field(ge=SHANGHAI_LAT[0], le=SHANGHAI_LAT[1], description="WGS-84, inside Shanghai")
    lon: float = Field(ge=SHANGHAI_LON[0], le=SHANGHAI_LON[1], description="WGS-84, inside Shanghai")
    operator_name: Text200
    service_modes: list[ServiceMode] = Field(min_length=1, max_length=3)
    capacity: Capacity

    @field_validator("service_modes")
    @classmethod
    def _modes_once_each(cls, modes: list[ServiceMode]) -> list[ServiceMode]:
        if len(set(modes)) != len(modes):
            raise ValueError("each service mode may appear once")
        return modes


class FacilityRead(BaseModel):
    id: str
    name: str
    kind: FacilityKind
    inclusive: bool
    has_nursery_class: bool
    town_code: str
    district_code: str
    address: str
    lat: float
    lon: float
    operator_name: str
    service_modes: list[ServiceMode]
    capacity: Capacity
    status: FacilityStatus
    license_no: str | None
    version: int
    submitted_at: datetime
    updated_at: datetime


class TownRead(BaseModel):
    code: str
    name: str
    town_type: str
    name_variant: str | None = None


class DistrictRead(BaseModel):
    code: str
    name: str
    pinyin: str
    is_central_city: bool
    towns: list[TownRead]
