"""Registry's bodies: applications."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from services.registry.schemas.common import DEPARTMENTS, Note2000, PerAgeClass, Reason
from services.registry.schemas.facilities import FacilityRead
from shared.contracts.types import Month


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
