"""Inspectors, 双随机 plans, inspections and rectification."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from services.monitoring.schemas.common import DistrictCode, Note, Seed, Text, Uuid
from shared.clock import Day
from shared.contracts.types import Month
from shared.scalars import Flag, Integer


class InspectorCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"district_code": "310104", "name": "李明"}]}
    )

    district_code: DistrictCode
    name: Annotated[Text, Field(max_length=100)]


class InspectorUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"active": False}]})

    active: Flag


class InspectorRead(BaseModel):
    id: str
    district_code: str
    name: str
    active: bool
    created_at: datetime


class PlanCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"district_code": "310104", "month": "2026-04", "sample_size": 5}]},
    )

    district_code: DistrictCode
    month: Month = Field(description="YYYY-MM")
    sample_size: Annotated[Integer, Field(ge=1, le=500, description="Facilities to draw")]
    seed: Seed | None = Field(default=None, description="Generated (and stored) when absent")


class Coverage(BaseModel):
    """Whether the plans left this year can still inspect every facility on site once."""

    not_inspected_this_year: int
    remaining_months: int = Field(description="This month and the months after it in the year")
    enough: bool
    needed_sample_size: int = Field(description="Per month, to reach every facility by December")
    note: str


class ItemCode(StrEnum):
    food_safety = "food_safety"
    health_care = "health_care"
    fire_safety = "fire_safety"
    premises = "premises"
    staffing = "staffing"
    records = "records"
    video_coverage = "video_coverage"


class InspectionItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: ItemCode
    passed: Flag
    note: Annotated[Note, Field(max_length=2000)] | None = None


class InspectionOutcome(StrEnum):
    passed = "pass"
    rectify = "rectify"
    fail = "fail"


class InspectionRead(BaseModel):
    id: str
    plan_id: str | None
    facility_id: str
    district_code: str
    inspector_ids: list[str]
    status: str
    outcome: str | None
    items: list[dict[str, Any]]
    inspected_on: date | None
    rectify_by: date | None
    rectified_on: date | None
    rectification_note: str | None
    rectification_overdue_at: datetime | None
    version: int
    created_at: datetime


class PlanRead(BaseModel):
    id: str
    district_code: str
    month: str
    sample_size: int
    drawn: int = Field(description="Facilities drawn (fewer than sample_size when the district has fewer)")
    seed: str
    algorithm: str
    drawn_by: str
    drawn_at: datetime
    previous_plan_id: str | None
    supersedes: str | None
    superseded_by: str | None
    coverage: Coverage
    inputs: dict[str, Any]
    inspections: list[InspectionRead]


class DrawnPair(BaseModel):
    facility_id: str
    inspector_ids: list[str]


class PlanVerification(BaseModel):
    plan_id: str
    algorithm: str
    seed: str
    matches: bool
    stored: list[DrawnPair]
    recomputed: list[DrawnPair]


class InspectionCreate(BaseModel):
    """An on-site inspection outside the monthly draw."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "facility_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
                    "inspector_ids": ["9b2e4c1a-7d3f-4e8a-b5c6-1f0a2d3e4b5c"],
                }
            ]
        },
    )

    facility_id: Uuid
    inspector_ids: Annotated[list[Uuid], Field(min_length=1, max_length=10)]


class ResultCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"items": [{"code": "food_safety", "passed": True}], "outcome": "pass"}]
        },
    )

    items: Annotated[list[InspectionItemIn], Field(min_length=1, max_length=len(ItemCode))]
    outcome: InspectionOutcome
    rectify_by: Day | None = None
    inspected_on: Day | None = Field(default=None, description="Defaults to today (Shanghai)")


class RectificationCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"rectified_on": "2026-03-20", "note": "消防通道已清理"}]},
    )

    rectified_on: Day
    note: Annotated[Text, Field(max_length=2000)]
