"""Request and reply bodies of the casework: incidents, inspectors, plans, inspections, risk."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shared.clock import Day, Timestamp
from shared.contracts.types import DecisionRef, UuidAnyCase
from shared.scalars import Flag, Integer
from shared.text import FreeText

# Text as every service takes it (shared/text.py): no NUL, other control characters or lone surrogates.
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1), FreeText]
Note = Annotated[str, StringConstraints(strip_whitespace=True), FreeText]
Uuid = Annotated[
    str,
    StringConstraints(
        pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    ),
]
DistrictCode = Annotated[str, StringConstraints(pattern=r"^\d{6}$")]
Month = Annotated[str, StringConstraints(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")]
Seed = Annotated[str, StringConstraints(pattern=r"^[!-~]{1,64}$")]
# The contract's own types: what the API takes, the incident.confirmed event can carry.
PractitionerIds = Annotated[list[UuidAnyCase], Field(max_length=50)]


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
    model_config = ConfigDict(extra="forbid")

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

    model_config = ConfigDict(extra="forbid")

    category: IncidentCategory
    severity: Severity
    description: Annotated[Text, Field(max_length=4000)]
    practitioner_ids: PractitionerIds = Field(default_factory=list)
    occurred_at: Timestamp | None = Field(default=None, description="Defaults to the alert's first_at")


class FindingCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: FindingOutcome
    category: IncidentCategory
    abuser_practitioner_ids: PractitionerIds = Field(default_factory=list)
    responsible_manager_ids: PractitionerIds = Field(default_factory=list)
    decision_ref: DecisionRef
    note: Annotated[Note, Field(max_length=2000)] = ""


class FindingConfirm(BaseModel):
    """EDU confirms the proposed finding as it stands; its own reference, when given, is the one
    the ban records."""

    model_config = ConfigDict(extra="forbid")

    decision_ref: DecisionRef | None = None
    note: Annotated[Note, Field(max_length=2000)] = ""


class FindingReject(BaseModel):
    model_config = ConfigDict(extra="forbid")

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


# ---- inspectors and plans ---------------------------------------------------------------------


class InspectorCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    district_code: DistrictCode
    name: Annotated[Text, Field(max_length=100)]


class InspectorUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    active: Flag


class InspectorRead(BaseModel):
    id: str
    district_code: str
    name: str
    active: bool
    created_at: datetime


class PlanCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

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

    model_config = ConfigDict(extra="forbid")

    facility_id: Uuid
    inspector_ids: Annotated[list[Uuid], Field(min_length=1, max_length=10)]


class ResultCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: Annotated[list[InspectionItemIn], Field(min_length=1, max_length=len(ItemCode))]
    outcome: InspectionOutcome
    rectify_by: Day | None = None
    inspected_on: Day | None = Field(default=None, description="Defaults to today (Shanghai)")


class RectificationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rectified_on: Day
    note: Annotated[Text, Field(max_length=2000)]


# ---- risk and figures -------------------------------------------------------------------------


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
