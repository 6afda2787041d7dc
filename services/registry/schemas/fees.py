"""Registry's bodies: fee schedules (收费公示) and change requests to licensed facts."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from services.registry.schemas.applications import ReviewDecision
from services.registry.schemas.common import (
    SHANGHAI_LAT,
    SHANGHAI_LON,
    Address,
    AgeClass,
    Capacity,
    Classes,
    Note2000,
    ServiceMode,
)
from shared.partial import PartialUpdate
from shared.scalars import Flag, Number
from shared.text import line

# Yuan with at most two decimals (fen); never a float on the way in or out (JSON carries a string).
Money = Annotated[Decimal, Field(ge=0, le=1_000_000, max_digits=9, decimal_places=2)]


class FeeLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    age_class: AgeClass
    service_mode: ServiceMode
    amount: Money = Field(description="Yuan per month (full_day, half_day) or per hour (hourly)")


class OtherCharge(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: line(100)
    amount: Money = Field(description="Yuan")


class FeeLineRead(BaseModel):
    """A fee as read back: the amount in yuan as a string with two decimals."""

    age_class: AgeClass
    service_mode: ServiceMode
    amount: Decimal


class OtherChargeRead(BaseModel):
    name: str
    amount: Decimal


class FeeScheduleCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "effective_from": "2026-09-01",
                    "fees": [
                        {"age_class": "toddler", "service_mode": "full_day", "amount": "2800.00"},
                        {"age_class": "toddler", "service_mode": "half_day", "amount": "1600.00"},
                        {"age_class": "toddler", "service_mode": "hourly", "amount": "60.00"},
                    ],
                    "meals_per_month": "450.00",
                    "other_charges": [{"name": "被褥费（一次性）", "amount": "200.00"}],
                }
            ]
        },
    )

    effective_from: date
    fees: list[FeeLine] = Field(min_length=1, max_length=9)
    meals_per_month: Money | None = Field(default=None, description="伙食费, yuan per month")
    other_charges: list[OtherCharge] = Field(default_factory=list, max_length=20)

    @field_validator("fees")
    @classmethod
    def _one_fee_per_class_and_mode(cls, fees: list[FeeLine]) -> list[FeeLine]:
        keys = [(f.age_class, f.service_mode) for f in fees]
        if len(set(keys)) != len(keys):
            raise ValueError("one fee per age class and service mode")
        return fees


class FeeScheduleStatus(StrEnum):
    published = "published"  # disclosed; in force from effective_from
    pending = "pending"  # awaiting EDU (its change request)
    rejected = "rejected"
    superseded = "superseded"  # a later schedule replaced it while it was pending


class FeeScheduleRead(BaseModel):
    id: str
    facility_id: str
    version: int
    effective_from: date
    fees: list[FeeLineRead]
    meals_per_month: Decimal | None
    other_charges: list[OtherChargeRead]
    status: FeeScheduleStatus
    max_full_day_monthly: Decimal | None = Field(description="The highest monthly full-day fee")
    cap: Decimal | None = Field(description="The district's inclusive cap for the effective year")
    over_cap: bool
    change_request_id: str | None = None
    recorded_at: datetime
    published_at: datetime | None


class PublicFees(BaseModel):
    """The latest schedule disclosed, as the public pages show it."""

    effective_from: date
    fees: list[FeeLineRead]
    meals_per_month: Decimal | None
    other_charges: list[OtherChargeRead]


class ChangeRequestKind(StrEnum):
    facts = "facts"
    fees = "fees"


class ChangeRequestStatus(StrEnum):
    pending = "pending"
    approved = "approved"
    rejected = "rejected"
    superseded = "superseded"


class LicensedFactsChange(PartialUpdate):
    """A licensed facility's licensed facts: they change when the licensing departments approve."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"capacity": {"infant": 10, "toddler": 30, "preschool": 20}, "reason": "新增托小班"}]
        },
    )

    capacity: Capacity | None = None
    classes: Classes | None = None
    address: Address | None = None
    lat: Number | None = Field(default=None, ge=SHANGHAI_LAT[0], le=SHANGHAI_LAT[1])
    lon: Number | None = Field(default=None, ge=SHANGHAI_LON[0], le=SHANGHAI_LON[1])
    town_code: Annotated[str, StringConstraints(pattern=r"^\d{9}$")] | None = None
    inclusive: Flag | None = None
    reason: Note2000 = ""

    @model_validator(mode="after")
    def _something_changes(self) -> LicensedFactsChange:
        if not (self.model_fields_set - {"reason"}):
            raise ValueError("name at least one licensed fact to change")
        return self


class ChangeRequestReviewRead(BaseModel):
    department: str
    decision: ReviewDecision
    note: str
    reviewed_at: datetime


class ChangeRequestRead(BaseModel):
    id: str
    facility_id: str
    kind: ChangeRequestKind
    changes: dict[str, object] = Field(description="The facts asked for (facts), or the schedule (fees)")
    fee_schedule_id: str | None
    status: ChangeRequestStatus
    reason: str
    departments: list[str] = Field(description="The departments whose approval it needs")
    awaiting: list[str] = Field(description="Those that have not approved yet (while pending)")
    reviews: list[ChangeRequestReviewRead] = Field(description="Every review, oldest first")
    requested_at: datetime
    decided_at: datetime | None


class FeeCapFlag(BaseModel):
    """An inclusive facility whose fees went above its district's cap, not settled yet by EDU."""

    facility_id: str
    name: str
    district_code: str
    town_code: str
    current_fees: PublicFees | None
    pending_schedule: FeeScheduleRead | None


class FeeStanding(BaseModel):
    """A facility's fees today: the schedule in force, one announced to take effect later, one held
    for EDU, and whether it is flagged for fees above its district's inclusive cap (coverage does not
    count it as inclusive meanwhile)."""

    facility_id: str
    in_force: FeeScheduleRead | None = Field(description="The published schedule in force today")
    announced: FeeScheduleRead | None = Field(
        description="A published schedule taking effect after today (the public pages show it)"
    )
    pending: FeeScheduleRead | None = Field(description="A schedule held for EDU (above the cap, or flagged)")
    flagged_over_cap: bool = Field(description="Inclusive, fees went above the cap, not yet settled by EDU")
    cap: Decimal | None = Field(description="The district's inclusive cap for this year, yuan a month")
