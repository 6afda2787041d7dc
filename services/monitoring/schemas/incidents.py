"""Incidents: reports, escalations, findings and their review."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from services.monitoring.schemas.common import Note, PractitionerIds, Text, Uuid
from shared.clock import Timestamp
from shared.contracts.types import DecisionRef


class IncidentCategory(StrEnum):
    abuse = "abuse"
    injury = "injury"
    illness_outbreak = "illness_outbreak"
    food_safety = "food_safety"
    fire = "fire"
    other = "other"


# A facility must report these within `report_deadline_hours_urgent`, the rest within `_other`.
URGENT_CATEGORIES = frozenset(
    {IncidentCategory.abuse, IncidentCategory.injury, IncidentCategory.illness_outbreak}
)


class Severity(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


class ReporterKind(StrEnum):
    facility = "facility"
    inspector = "inspector"
    parent = "parent"
    district = "district"
    bureau = "bureau"
    alert = "alert"  # only through POST /v1/alerts/{id}/escalate


class IncidentStatus(StrEnum):
    reported = "reported"
    proposed = "proposed"  # a district's abuse finding waits for EDU
    confirmed = "confirmed"
    unfounded = "unfounded"


class FindingOutcome(StrEnum):
    confirmed = "confirmed"
    unfounded = "unfounded"


class IncidentCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "facility_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
                    "category": "abuse",
                    "severity": "high",
                    "occurred_at": "2026-03-02T09:30:00+08:00",
                    "description": "家长反映幼儿手臂有淤青",
                }
            ]
        },
    )

    facility_id: Uuid
    category: IncidentCategory
    severity: Severity
    occurred_at: Timestamp
    description: Annotated[Text, Field(max_length=4000)]
    practitioner_ids: PractitionerIds = Field(default_factory=list)
    reported_by_kind: ReporterKind | None = Field(
        default=None, description="Defaults from who you are: an operator reports as the facility."
    )


class Escalation(BaseModel):
    """An alert that turned out to be an incident."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"category": "abuse", "severity": "high", "description": "录像显示保育员推搡幼儿"}]
        },
    )

    category: IncidentCategory
    severity: Severity
    description: Annotated[Text, Field(max_length=4000)]
    practitioner_ids: PractitionerIds = Field(default_factory=list)
    occurred_at: Timestamp | None = Field(default=None, description="Defaults to the alert's first_at")


class FindingCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"outcome": "unfounded", "category": "abuse", "decision_ref": "徐教托〔2026〕3号"}]
        },
    )

    outcome: FindingOutcome
    category: IncidentCategory
    abuser_practitioner_ids: PractitionerIds = Field(default_factory=list)
    responsible_manager_ids: PractitionerIds = Field(default_factory=list)
    decision_ref: DecisionRef
    note: Annotated[Note, Field(max_length=2000)] = ""


class FindingConfirm(BaseModel):
    """EDU confirms the proposed finding as it stands; its own reference, when given, is the one
    the ban records."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"decision_ref": "沪教托〔2026〕12号", "note": "经复核，事实清楚"}]},
    )

    decision_ref: DecisionRef | None = None
    note: Annotated[Note, Field(max_length=2000)] = ""


class FindingReject(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "证据不足，退回区里补充调查"}]}
    )

    reason: Annotated[Text, Field(max_length=2000)]


class FindingRead(BaseModel):
    id: str
    status: str = Field(description="proposed | confirmed | rejected | final")
    outcome: str
    category: str
    abuser_practitioner_ids: list[str]
    responsible_manager_ids: list[str]
    decision_ref: str
    note: str
    recorded_by: str
    recorded_at: datetime
    reviewed_by: str | None
    reviewed_at: datetime | None
    review_ref: str | None
    review_note: str | None


class IncidentRead(BaseModel):
    id: str
    facility_id: str
    district_code: str
    category: str
    severity: str
    status: str
    description: str
    practitioner_ids: list[str]
    reported_by_kind: str
    alert_id: str | None
    occurred_at: datetime
    reported_at: datetime
    report_due_at: datetime
    reported_late: bool
    finding_due_at: datetime
    finding_overdue_at: datetime | None
    outcome: str | None
    decision_ref: str | None
    decided_at: datetime | None
    abuser_practitioner_ids: list[str]
    responsible_manager_ids: list[str]
    version: int


class IncidentTransitionRead(BaseModel):
    from_status: str | None
    to_status: str
    actor: str
    note: str
    at: datetime


class IncidentDetail(IncidentRead):
    history: list[IncidentTransitionRead]
    findings: list[FindingRead] = Field(description="Every finding recorded, oldest first")
