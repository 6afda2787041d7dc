"""A practitioner's training hours, a year's totals, and who meets the required hours."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from services.workforce.schemas.common import Text200
from shared.clock import Day
from shared.scalars import Number


class TrainingCategory(StrEnum):
    skills = "skills"
    ethics = "ethics"
    other = "other"


class TrainingCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"category": "ethics", "hours": 8, "date": "2026-03-02", "provider": "上海开放大学"}]
        },
    )

    category: TrainingCategory
    hours: Number = Field(gt=0, le=200, description="hours of this course or session")
    date: Day
    provider: Text200


class TrainingRead(BaseModel):
    id: str
    practitioner_id: str
    category: TrainingCategory
    hours: float
    date: dt.date
    provider: str


class TrainingTotals(BaseModel):
    practitioner_id: str
    year: int
    skills_hours: float
    ethics_hours: float
    other_hours: float
    meets: bool


class TrainingCompliance(BaseModel):
    year: int
    facility_id: str | None
    required_skills_hours: float
    required_ethics_hours: float
    practitioners: int
    meeting: int
    items: list[TrainingTotals]
    next_cursor: str | None = None
