"""Registry's bodies: subsidies (综合奖补). Amounts are integer fen (0.01 yuan), never floats."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from services.registry.schemas.common import Note2000
from shared.clock import Day
from shared.contracts.types import Month
from shared.scalars import Integer
from shared.text import line

# At most ten million yuan a place a month: far above any rate, far below any overflow.
RateFen = Annotated[Integer, Field(ge=1, le=1_000_000_000)]
PaidFen = Annotated[Integer, Field(ge=0, le=10**13)]
PaymentReference = line(64)


class SubsidyListStatus(StrEnum):
    draft = "draft"
    returned = "returned"
    approved = "approved"
    published = "published"


class SubsidyReviewDecision(StrEnum):
    approve = "approve"
    return_ = "return"


class RateSet(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"amount_fen": 50000, "note": "沪财教〔2026〕12号"}]},
    )

    amount_fen: RateFen = Field(description="Per inclusive place per month, in fen (50000 = 500.00 yuan)")
    note: Note2000 = ""


class RateRead(BaseModel):
    id: str
    district_code: str
    year: int
    amount_fen: int
    note: str
    set_by: str
    set_at: datetime


class RateHistory(BaseModel):
    district_code: str
    year: int
    current: RateRead | None
    history: list[RateRead] = Field(description="Every setting, newest first")


class SubsidyListReview(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"decision": "approve", "note": "已核对在托人数与收费公示"}]},
    )

    decision: SubsidyReviewDecision
    note: Note2000 = ""


class PaymentCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"paid_fen": 550000, "paid_on": "2026-11-20", "reference": "SHCZ-2026-11-000123"}]
        },
    )

    paid_fen: PaidFen
    paid_on: Day
    reference: PaymentReference = Field(description="FINANCE's own payment reference")


class SubsidyListRead(BaseModel):
    id: str
    month: str
    district_code: str
    status: SubsidyListStatus
    closes_at: datetime = Field(description="The instant whose records the list reads")
    rate_fen: int
    line_count: int
    eligible_lines: int
    places: int
    total_fen: int = Field(description="Entitlements and adjustments together, in fen")
    computed_by: str
    computed_at: datetime
    reviewed_by: str | None
    reviewed_at: datetime | None
    review_note: str
    published_by: str | None
    published_at: datetime | None
    version: int


class SubsidyCheck(BaseModel):
    code: str = Field(description="licensed, inclusive, fees_within_cap, enrolment_reported, …")
    passed: bool
    en: str
    zh: str


class SubsidyLineRead(BaseModel):
    id: str
    list_id: str
    month: str = Field(description="The list's month")
    district_code: str
    facility_id: str
    facility_name: str
    kind: str = Field(description="entitlement (the list's month) or adjustment (of `for_month`)")
    for_month: str
    eligible: bool
    places: int
    rate_fen: int
    amount_fen: int
    refusals: list[str] = Field(description="Machine-readable: not_operating, not_inclusive, …")
    checks: list[SubsidyCheck] = Field(description="Every condition and the places counted, in zh and en")
    paid_fen: int | None
    paid_on: date | None
    payment_reference: str | None


class SubsidyLineRow(BaseModel):
    """One line as a spreadsheet row: the reasons as text."""

    month: str
    district_code: str
    facility_id: str
    facility_name: str
    kind: str
    for_month: str
    eligible: bool
    places: int
    rate_fen: int
    amount_fen: int
    refusals: list[str]
    reasons_zh: str
    reasons_en: str
    paid_fen: int | None
    paid_on: date | None
    payment_reference: str | None


__all__ = [
    "Month",
    "PaymentCreate",
    "RateHistory",
    "RateRead",
    "RateSet",
    "SubsidyCheck",
    "SubsidyLineRead",
    "SubsidyLineRow",
    "SubsidyListRead",
    "SubsidyListReview",
    "SubsidyListStatus",
    "SubsidyReviewDecision",
]
