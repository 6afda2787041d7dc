"""Registry's bodies: facilities."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from services.registry.schemas.common import (
    DEFAULT_HOURS,
    SHANGHAI_LAT,
    SHANGHAI_LON,
    Address,
    Capacity,
    Classes,
    FacilityKind,
    FacilityStatus,
    OpeningHours,
    PerAgeClass,
    ServiceMode,
    Text200,
)
from shared.partial import PartialUpdate
from shared.scalars import Flag, Number


class FacilityFields(BaseModel):
    """What an operator states about a facility; shared by the application and later edits."""

    model_config = ConfigDict(extra="forbid")

    name: Text200
    kind: FacilityKind
    inclusive: Flag
    has_nursery_class: Flag = False
    town_code: Annotated[str, StringConstraints(pattern=r"^\d{9}$")]
    address: Address
    lat: Number = Field(ge=SHANGHAI_LAT[0], le=SHANGHAI_LAT[1], description="WGS-84, inside Shanghai")
    lon: Number = Field(ge=SHANGHAI_LON[0], le=SHANGHAI_LON[1], description="WGS-84, inside Shanghai")
    operator_name: Text200
    service_modes: list[ServiceMode] = Field(min_length=1, max_length=3)
    capacity: Capacity
    classes: Classes | None = Field(
        default=None, description="Classes per age class; by default the fewest that hold the capacity"
    )
    opening_hours: list[OpeningHours] = Field(default_factory=lambda: list(DEFAULT_HOURS), max_length=7)

    @field_validator("service_modes")
    @classmethod
    def _modes_once_each(cls, modes: list[ServiceMode]) -> list[ServiceMode]:
        if len(set(modes)) != len(modes):
            raise ValueError("each service mode may appear once")
        return modes

    @model_validator(mode="after")
    def _nursery_class_is_for_kindergartens(self) -> FacilityFields:
        if self.has_nursery_class and self.kind != FacilityKind.kindergarten:
            raise ValueError("has_nursery_class applies to kindergartens only (托幼一体)")
        return self


class FacilityCreate(FacilityFields):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "天平街道社区托育点",
                    "kind": "community_point",
                    "inclusive": True,
                    "has_nursery_class": False,
                    "town_code": "310104003",
                    "address": "天平路 100 号",
                    "lat": 31.205,
                    "lon": 121.44,
                    "operator_name": "天平街道社区服务中心",
                    "service_modes": ["full_day", "hourly"],
                    "capacity": {"infant": 10, "toddler": 15, "preschool": 20},
                }
            ]
        }
    )

    pass


class FacilityUpdate(PartialUpdate):
    """A partial edit (PATCH): only the fields given change."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"address": "天平路 102 号"}]})

    name: Text200 | None = None
    inclusive: Flag | None = None
    has_nursery_class: Flag | None = None
    address: Address | None = None
    lat: Number | None = Field(default=None, ge=SHANGHAI_LAT[0], le=SHANGHAI_LAT[1])
    lon: Number | None = Field(default=None, ge=SHANGHAI_LON[0], le=SHANGHAI_LON[1])
    operator_name: Text200 | None = None
    service_modes: list[ServiceMode] | None = Field(default=None, min_length=1, max_length=3)
    capacity: Capacity | None = None
    classes: Classes | None = None
    opening_hours: list[OpeningHours] | None = Field(default=None, max_length=7)

    @model_validator(mode="after")
    def _something_changes(self) -> FacilityUpdate:
        if not self.model_fields_set:
            raise ValueError("name at least one field to change")
        return self


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
    classes: Classes
    enrolment: PerAgeClass
    enrolment_month: str | None
    opening_hours: list[OpeningHours]
    status: FacilityStatus
    license_no: str | None
    rejection_reasons: list[str]
    grade: str | None
    is_demonstration: bool
    version: int
    submitted_at: datetime
    approved_at: datetime | None
    updated_at: datetime


class FacilitySummary(BaseModel):
    id: str
    name: str
    kind: FacilityKind
    inclusive: bool
    has_nursery_class: bool
    status: FacilityStatus
    district_code: str
    town_code: str
    address: str
    lat: float
    lon: float
    service_modes: list[ServiceMode]
    capacity: Capacity
    free_places: PerAgeClass
    license_no: str | None
    grade: str | None
    is_demonstration: bool
    distance_m: float | None = None


class FacilityVersionRead(BaseModel):
    """A facility as it was after one edit (`facility` holds the record's fields at that version)."""

    version: int
    changed_at: datetime
    facility: dict[str, object]
