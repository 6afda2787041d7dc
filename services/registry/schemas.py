"""registry's request and reply shapes."""

from __future__ import annotations

import re
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from shared.clock import Day
from shared.scalars import Flag, Integer, Number
from shared.text import line, text

# Shanghai's bounding box (WGS-84), with a margin for 崇明's islands and 金山's coast.
SHANGHAI_LAT = (30.66, 31.88)
SHANGHAI_LON = (120.85, 122.20)
AGE_CLASSES = ("infant", "toddler", "preschool")
DEPARTMENTS = ("EDU", "HEALTH", "FIRE", "SAMR", "POLICE")

Text200 = line(200)
Address = line(300)
Reason = text(2000, min_length=1)
Note2000 = text(2000)
Month = Annotated[str, StringConstraints(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")]
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d\Z")


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


class AgeClass(StrEnum):
    infant = "infant"
    toddler = "toddler"
    preschool = "preschool"


class PerAgeClass(BaseModel):
    model_config = ConfigDict(extra="forbid")

    infant: Integer = Field(ge=0, le=1000, description="乳儿班, 6–12 months")
    toddler: Integer = Field(ge=0, le=1000, description="托小班, 12–24 months")
    preschool: Integer = Field(ge=0, le=1000, description="托大班, 24–36 months")


class Capacity(PerAgeClass):
    pass


class Classes(BaseModel):
    model_config = ConfigDict(extra="forbid")

    infant: Integer = Field(default=0, ge=0, le=50)
    toddler: Integer = Field(default=0, ge=0, le=50)
    preschool: Integer = Field(default=0, ge=0, le=50)


class OpeningHours(BaseModel):
    model_config = ConfigDict(extra="forbid")

    days: list[Integer] = Field(min_length=1, max_length=7, description="1 = Monday … 7 = Sunday")
    opens: str = Field(description="HH:MM")
    closes: str = Field(description="HH:MM")

    @field_validator("days")
    @classmethod
    def _weekdays(cls, days: list[int]) -> list[int]:
        if any(d < 1 or d > 7 for d in days) or len(set(days)) != len(days):
            raise ValueError("days are distinct numbers from 1 (Monday) to 7 (Sunday)")
        return sorted(days)

    @field_validator("opens", "closes")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError("a time of day as HH:MM")
        return value

    @model_validator(mode="after")
    def _opens_before_closing(self) -> OpeningHours:
        if self.opens >= self.closes:
            raise ValueError("opens must be before closes")
        return self


DEFAULT_HOURS = [OpeningHours(days=[1, 2, 3, 4, 5], opens="08:00", closes="18:00")]


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


class FacilityUpdate(BaseModel):
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


class ReviewDecision(StrEnum):
    approve = "approve"
    reject = "reject"


class ReviewCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"department": "HEALTH", "decision": "approve", "note": "卫生评价合格"}]
        },
    )

    department: Annotated[str, StringConstraints(pattern="^(" + "|".join(DEPARTMENTS) + ")$")]
    decision: ReviewDecision
    note: Note2000 = ""

    @model_validator(mode="after")
    def _rejection_says_why(self) -> ReviewCreate:
        if self.decision == ReviewDecision.reject and not self.note:
            raise ValueError("a rejection gives its reasons in note")
        return self


class ReviewRead(BaseModel):
    id: str
    facility_id: str
    department: str
    decision: ReviewDecision
    note: str
    reviewed_at: datetime


class ApplicationRead(BaseModel):
    facility: FacilityRead
    reviews: list[ReviewRead]
    awaiting: list[str] = Field(description="Required departments that have not approved yet")


class StatusTarget(StrEnum):
    suspended = "suspended"
    closed = "closed"
    approved = "approved"  # reinstate


class StatusChange(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"status": "suspended", "reason": "消防检查不合格，停业整改"}]},
    )

    status: StatusTarget
    reason: Reason


class StatusChangeRead(BaseModel):
    from_status: str | None
    to_status: str
    reason: str
    changed_at: datetime


class EnrolmentReport(PerAgeClass):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"month": "2026-03", "infant": 8, "toddler": 12, "preschool": 15}]}
    )

    month: Month


class AssessmentMethod(StrEnum):
    self_ = "self"
    peer = "peer"
    commissioned = "commissioned"


class AssessmentCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "method": "self",
                    "scores": {"safety": 92, "care": 88},
                    "grade": "A",
                    "assessed_on": "2026-03-02",
                    "assessor": "天平街道社区服务中心",
                }
            ]
        },
    )

    method: AssessmentMethod
    scores: dict[Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,40}$")], Number] = Field(
        min_length=1, max_length=30, description="Dimension → score 0–100"
    )
    grade: Annotated[str, StringConstraints(pattern=r"^(A|B|C|D)$")]
    assessed_on: Day
    assessor: Text200

    @field_validator("scores")
    @classmethod
    def _scores_in_range(cls, scores: dict[str, float]) -> dict[str, float]:
        bad = [k for k, v in scores.items() if not 0 <= v <= 100]
        if bad:
            raise ValueError(f"scores are 0–100: {', '.join(bad)}")
        return scores

    @field_validator("assessed_on")
    @classmethod
    def _not_in_future(cls, day: date) -> date:
        if day > date.today():
            raise ValueError("cannot be in the future")
        return day


class AssessmentRead(BaseModel):
    id: str
    facility_id: str
    method: AssessmentMethod
    scores: dict[str, float]
    grade: str
    assessed_on: date
    assessor: str
    recorded_at: datetime


class Demonstration(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"designated": True, "reason": "2026 年市级示范托育机构"}]},
    )

    designated: Flag
    reason: Reason


class CreditPolarity(StrEnum):
    positive = "positive"
    negative = "negative"


class CreditEntryCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "polarity": "positive",
                    "category": "commendation",
                    "title": "区级优秀托育机构",
                    "occurred_on": "2026-03-02",
                }
            ]
        },
    )

    polarity: CreditPolarity
    category: Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,32}$")]
    title: Text200
    detail: Note2000 = ""
    occurred_on: Day

    @field_validator("occurred_on")
    @classmethod
    def _not_in_future(cls, day: date) -> date:
        if day > date.today():
            raise ValueError("cannot be in the future")
        return day


class CreditEntryRead(BaseModel):
    id: str
    polarity: CreditPolarity
    category: str
    title: str
    detail: str
    occurred_on: date
    source_event_type: str | None
    recorded_at: datetime


class FailedItem(BaseModel):
    code: str
    description: str
    note: str | None = None


class InspectionRead(BaseModel):
    inspection_id: str
    inspected_on: date
    outcome: str
    failed_items: list[FailedItem]
    rectify_by: date | None
    rectified: bool
    rectified_on: date | None


class PublicFacility(BaseModel):
    """What anyone may read about an approved facility (信息公开)."""

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
    distance_m: float | None = None


class PublicFacilityPage(PublicFacility):
    inspections: list[InspectionRead]
    credit_record: list[CreditEntryRead]


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


class TownCoverage(BaseModel):
    code: str
    name: str
    town_type: str
    inclusive_points: int
    has_inclusive_point: bool
    new_inclusive_points: int


class DistrictCoverage(BaseModel):
    code: str
    name: str
    is_central_city: bool
    inclusive_points: int
    new_inclusive_points: int
    towns_with_point: int
    towns: int
    places: int
    children_under_3_estimate: int | None
    places_per_100_children: float | None
    town_coverage: list[TownCoverage]


class CityCoverage(BaseModel):
    year: int
    inclusive_points: int
    new_inclusive_points: int
    towns: int
    towns_with_point: int
    inclusive_town_coverage: float
    central_streets: int
    central_streets_with_point: int
    central_street_coverage: float
    kindergartens: int
    kindergartens_with_nursery_class: int
    kindergarten_nursery_share: float | None
    demand_note: str
    districts: list[DistrictCoverage]
