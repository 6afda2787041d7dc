"""The risk score and the plan's figures."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class RiskReason(BaseModel):
    code: str
    count: int
    points: float
    detail: str


class RiskRead(BaseModel):
    facility_id: str
    score: float
    level: str = Field(description="none | low | medium | high")
    reasons: list[RiskReason]
    computed_at: datetime


class RiskListItem(RiskRead):
    name: str
    district_code: str
    status: str


class DistrictFigures(BaseModel):
    district_code: str
    facilities_approved: int
    facilities_inspected_onsite: int
    onsite_inspection_rate: float | None
    incidents: dict[str, dict[str, int]] = Field(
        description="category → status (reported|proposed|confirmed|unfounded) → count"
    )
    alerts_by_severity: dict[str, int]


class Figures(BaseModel):
    year: int
    computed_at: datetime
    districts: list[DistrictFigures]
    city: DistrictFigures = Field(description="Totals; district_code is empty")
