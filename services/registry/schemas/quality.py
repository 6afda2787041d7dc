"""Registry's bodies: quality."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from services.registry.schemas.common import Note2000, Reason, Text200
from shared.clock import Day
from shared.scalars import Flag, Number


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
