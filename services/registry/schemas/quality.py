"""Registry's bodies: quality."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from services.registry.schemas.common import Note2000, Reason, Text200
from shared.clock import Day
from shared.scalars import Flag, Number

Grade = Annotated[str, StringConstraints(pattern=r"^(A|B|C|D)$")]
DimensionCode = Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,40}$")]


class AssessmentGrade(StrEnum):
    """The grades an assessment gives, overall and per dimension."""

    A = "A"
    B = "B"
    C = "C"
    D = "D"


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
                    "dimension_grades": {
                        "facility_conditions": "A",
                        "workforce": "A",
                        "care": "B",
                        "health_care": "A",
                        "parenting_support": "B",
                        "safety": "A",
                        "management": "A",
                    },
                }
            ]
        },
    )

    method: AssessmentMethod
    scores: dict[Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,40}$")], Number] = Field(
        min_length=1, max_length=30, description="Dimension → score 0–100"
    )
    grade: Grade
    assessed_on: Day
    assessor: Text200
    dimension_grades: dict[DimensionCode, Grade] | None = Field(
        default=None,
        max_length=30,
        description="A grade per dimension of the current quality framework: every dimension, no other",
    )

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
    framework_version: int | None = Field(default=None, description="The quality framework version it used")
    dimension_grades: dict[str, str] | None = None


class FrameworkItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: DimensionCode
    name: Text200


class FrameworkDimension(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: DimensionCode
    name: Text200
    items: list[FrameworkItem] = Field(default_factory=list, max_length=50)

    @field_validator("items")
    @classmethod
    def _distinct_items(cls, items: list[FrameworkItem]) -> list[FrameworkItem]:
        codes = [i.code for i in items]
        if len(set(codes)) != len(codes):
            raise ValueError("item codes are distinct within a dimension")
        return items


class QualityFrameworkCreate(BaseModel):
    """A new version of the quality assessment's dimensions and items (the old ones stay as they were)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "title": "托育机构质量评估 2027 修订",
                    "source": "WS/T 821—2023 托育机构质量评估标准",
                    "dimensions": [
                        {
                            "code": "facility_conditions",
                            "name": "办托条件",
                            "items": [{"code": "qualification", "name": "机构资质"}],
                        },
                        {"code": "care", "name": "保育照护", "items": []},
                    ],
                }
            ]
        },
    )

    title: Text200
    source: Text200
    dimensions: list[FrameworkDimension] = Field(min_length=1, max_length=30)

    @field_validator("dimensions")
    @classmethod
    def _distinct_dimensions(cls, dimensions: list[FrameworkDimension]) -> list[FrameworkDimension]:
        codes = [d.code for d in dimensions]
        if len(set(codes)) != len(codes):
            raise ValueError("dimension codes are distinct")
        return dimensions


class QualityFrameworkRead(BaseModel):
    version: int
    title: str
    source: str
    dimensions: list[FrameworkDimension]
    published_at: datetime


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
