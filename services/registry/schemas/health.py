"""Registry's bodies: children's entry health checks (入托体检) and HEALTH's yearly 卫生保健 assessment."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.registry.schemas.common import Note2000
from shared.clock import Day
from shared.contracts.types import Month
from shared.scalars import Integer


class HealthAssessmentResult(StrEnum):
    """The 卫生保健 assessment's result: 合格 / 基本合格 / 不合格."""

    qualified = "qualified"
    basically_qualified = "basically_qualified"
    unqualified = "unqualified"


class EntryHealthCheckReport(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"month": "2026-03", "children_enrolled": 42, "children_checked": 40}]
        },
    )

    month: Month
    children_enrolled: Integer = Field(ge=0, le=3000, description="Children enrolled in the month")
    children_checked: Integer = Field(
        ge=0, le=3000, description="Of them, children with a completed entry health check (入托体检)"
    )

    @model_validator(mode="after")
    def _checked_within_enrolled(self) -> EntryHealthCheckReport:
        if self.children_checked > self.children_enrolled:
            raise ValueError("children_checked cannot exceed children_enrolled")
        return self


class EntryHealthCheckRead(BaseModel):
    month: str
    children_enrolled: int
    children_checked: int
    share_checked: float | None = Field(description="children_checked / children_enrolled (0–1)")
    reported_at: datetime


class HealthAssessmentCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "year": 2026,
                    "result": "qualified",
                    "assessed_on": "2026-05-12",
                    "notes": "晨午检、膳食与消毒记录齐全",
                }
            ]
        },
    )

    year: Integer = Field(ge=2000, le=2100, description="The year assessed")
    result: HealthAssessmentResult = Field(
        description="qualified 合格 / basically_qualified 基本合格 / unqualified 不合格"
    )
    assessed_on: Day
    notes: Note2000 = ""

    @field_validator("assessed_on")
    @classmethod
    def _not_in_future(cls, day: date) -> date:
        if day > date.today():
            raise ValueError("cannot be in the future")
        return day


class HealthAssessmentRead(BaseModel):
    id: str
    facility_id: str
    year: int
    result: HealthAssessmentResult
    assessed_on: date
    notes: str
    recorded_at: datetime
    superseded: bool = Field(description="A later record for the same year replaced it (both stay on record)")


class FacilityHealth(BaseModel):
    """The facility's health record on its profile: the latest months of entry checks and the latest
    卫生保健 result of each recent year."""

    facility_id: str
    entry_health_checks: list[EntryHealthCheckRead]
    health_assessments: list[HealthAssessmentRead]


class HealthResultCounts(BaseModel):
    qualified: int = 0
    basically_qualified: int = 0
    unqualified: int = 0


class DistrictHealthFigures(BaseModel):
    code: str
    name: str
    facilities_licensed: int = Field(description="Approved facilities at the year's end")
    facilities_reporting: int = Field(description="Facilities that reported entry checks for the month used")
    children_enrolled: int
    children_checked: int
    share_checked: float | None
    facilities_assessed: int = Field(description="Facilities with a 卫生保健 result for the year")
    results: HealthResultCounts


class HealthFigures(BaseModel):
    """HEALTH's figures for a year: entry health checks (each facility's latest month in the year)
    and the year's 卫生保健 results (each facility's latest record), per district and city-wide."""

    year: int
    city: DistrictHealthFigures
    districts: Annotated[list[DistrictHealthFigures], Field(max_length=16)]
