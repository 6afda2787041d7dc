"""Events the registry publishes. Every facility event carries the facility's current facts."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, Field, model_validator

from shared.contracts.types import (
    INT32_MAX,
    ClientId,
    ClockTime,
    Code,
    Count,
    DistrictCode,
    Month,
    Name,
    Reason,
    TownCode,
    Uuid,
    text,
)
from shared.events.envelope import DomainEvent

FacilityStatus = Literal["submitted", "approved", "rejected", "suspended", "closed"]


# Places and children per age class, as the registry takes them (at most 1,000 each).
PerClass = Annotated[int, Field(ge=0, le=1000)]


class Places(BaseModel):
    infant: PerClass
    toddler: PerClass
    preschool: PerClass


class OpeningHours(BaseModel):
    days: Annotated[list[Annotated[int, Field(ge=1, le=7)]], Field(min_length=1, max_length=7)]  # 1 = Monday
    opens: ClockTime
    closes: ClockTime

    @model_validator(mode="after")
    def _opens_before_closing(self) -> OpeningHours:
        if self.opens >= self.closes:
            raise ValueError("opens must be before closes")
        return self


class FacilityFacts(DomainEvent):
    """The facility's current facts, carried by every facility event for the others' projections."""

    facility_id: Uuid
    name: Name
    kind: Code
    inclusive: bool
    has_nursery_class: bool
    district_code: DistrictCode
    town_code: TownCode
    status: FacilityStatus
    license_no: text(32, min_length=1) | None = None
    owner_client_id: ClientId | None = None
    capacity: Places
    enrolment: Places
    opening_hours: Annotated[list[OpeningHours], Field(max_length=14)]
    version: Annotated[int, Field(ge=1, le=INT32_MAX)]  # consumers ignore an event older than what they hold
    occurred_at: datetime

    def subject_id(self) -> str:
        return self.facility_id


class FacilitySubmitted(FacilityFacts):
    event_type: ClassVar[str] = "cradle.registry.facility.submitted"


class ReviewFacts(BaseModel):
    department: Code
    decision: Literal["approve", "reject"]
    note: text(2000)


class FacilityReviewed(FacilityFacts):
    event_type: ClassVar[str] = "cradle.registry.facility.reviewed"
    review: ReviewFacts


class FacilityApproved(FacilityFacts):
    event_type: ClassVar[str] = "cradle.registry.facility.approved"
    approved_at: datetime


class FacilityRejected(FacilityFacts):
    event_type: ClassVar[str] = "cradle.registry.facility.rejected"
    reasons: list[Reason]


class FacilitySuspended(FacilityFacts):
    event_type: ClassVar[str] = "cradle.registry.facility.suspended"
    reason: Reason


class FacilityClosed(FacilityFacts):
    event_type: ClassVar[str] = "cradle.registry.facility.closed"
    reason: Reason


class FacilityReinstated(FacilityFacts):
    event_type: ClassVar[str] = "cradle.registry.facility.reinstated"
    reason: Reason


class FacilityUpdated(FacilityFacts):
    event_type: ClassVar[str] = "cradle.registry.facility.updated"


class EnrolmentUpdated(FacilityFacts):
    event_type: ClassVar[str] = "cradle.registry.enrolment.updated"
    month: Month


# The facility events a consumer's projection of the facility keeps (all but the review, whose
# facts arrive again with the decision): one handler takes them all, by `FacilityFacts`.
FACILITY_FACT_EVENTS: tuple[type[FacilityFacts], ...] = (
    FacilitySubmitted,
    FacilityApproved,
    FacilityRejected,
    FacilitySuspended,
    FacilityClosed,
    FacilityReinstated,
    FacilityUpdated,
    EnrolmentUpdated,
)


Grade = text(8, min_length=1)
DimensionCode = Annotated[str, Field(pattern=r"^[a-z_]{1,40}$")]


class AssessmentFacts(BaseModel):
    id: Uuid
    method: Literal["self", "peer", "commissioned"]
    grade: Grade
    assessed_on: date
    # The quality framework version it was recorded under, and its grade per dimension of it.
    framework_version: Annotated[int, Field(ge=1, le=INT32_MAX)] | None = None
    dimension_grades: Annotated[dict[DimensionCode, Grade], Field(max_length=30)] | None = None


class AssessmentRecorded(FacilityFacts):
    event_type: ClassVar[str] = "cradle.registry.assessment.recorded"
    assessment: AssessmentFacts


class EntryHealthCheckFacts(BaseModel):
    month: Month
    children_enrolled: Count
    children_checked: Count


class EntryHealthChecksReported(FacilityFacts):
    """A facility's month of 入托体检: children enrolled, and those with a completed entry health check."""

    event_type: ClassVar[str] = "cradle.registry.entry_health_check.reported"
    entry_health_check: EntryHealthCheckFacts


class HealthAssessmentFacts(BaseModel):
    id: Uuid
    year: Annotated[int, Field(ge=2000, le=2100)]
    result: Literal["qualified", "basically_qualified", "unqualified"]
    assessed_on: date


class HealthAssessmentRecorded(FacilityFacts):
    """HEALTH's yearly 卫生保健 assessment of a facility (a later one for the same year supersedes it)."""

    event_type: ClassVar[str] = "cradle.registry.health_assessment.recorded"
    health_assessment: HealthAssessmentFacts


class QualityFrameworkPublished(DomainEvent):
    """EDU published a new version of the quality assessment's dimensions and items (about no facility)."""

    event_type: ClassVar[str] = "cradle.registry.quality_framework.published"
    version: Annotated[int, Field(ge=1, le=INT32_MAX)]
    dimension_codes: Annotated[list[DimensionCode], Field(min_length=1, max_length=30)]
    published_at: datetime

    def subject_id(self) -> str:
        return str(self.version)


class ChangeRequestFacts(BaseModel):
    id: Uuid
    kind: Literal["facts", "fees"]
    status: Literal["pending", "approved", "rejected", "superseded"]
    fields: Annotated[list[Code], Field(max_length=16)]  # the licensed facts (or "fees") it changes
    departments: Annotated[list[Code], Field(min_length=1, max_length=8)]


class ChangeRequestOpened(FacilityFacts):
    """A change to licensed facts, or fees above the inclusive cap, now awaits the departments."""

    event_type: ClassVar[str] = "cradle.registry.change_request.opened"
    change_request: ChangeRequestFacts


class ChangeRequestDecided(FacilityFacts):
    """Approved by every department (the facts are the new ones) or rejected by one."""

    event_type: ClassVar[str] = "cradle.registry.change_request.decided"
    change_request: ChangeRequestFacts


class FeeFacts(BaseModel):
    schedule_id: Uuid
    version: Annotated[int, Field(ge=1, le=INT32_MAX)]
    effective_from: date
    max_full_day_fen: Count | None = None  # the highest monthly full-day fee, in fen
    cap_fen: Count | None = None  # the district's inclusive cap for the year, when one is set
    within_cap: bool


class FeesPublished(FacilityFacts):
    """A fee schedule disclosed (收费公示): in force from `fees.effective_from`."""

    event_type: ClassVar[str] = "cradle.registry.fees.published"
    fees: FeeFacts


# --- Subsidies (综合奖补): a district's monthly list and the payments FINANCE records --------------

Fen = Annotated[int, Field(ge=-(10**13), le=10**13)]  # amounts in fen (0.01 yuan), never floats
SubsidyListStatus = Literal["draft", "returned", "approved", "published"]


class SubsidyListFacts(DomainEvent):
    """A list's totals: who may see it is its district (no facility's figures ride on these)."""

    list_id: Uuid
    month: Month
    district_code: DistrictCode
    status: SubsidyListStatus
    line_count: Annotated[int, Field(ge=0, le=INT32_MAX)]
    eligible_lines: Annotated[int, Field(ge=0, le=INT32_MAX)]
    places: Annotated[int, Field(ge=0, le=INT32_MAX)]
    total_fen: Fen
    version: Annotated[int, Field(ge=1, le=INT32_MAX)]
    occurred_at: datetime

    def subject_id(self) -> str:
        return self.list_id


class SubsidyListComputed(SubsidyListFacts):
    event_type: ClassVar[str] = "cradle.registry.subsidy_list.computed"
    closes_at: datetime


class SubsidyListReviewed(SubsidyListFacts):
    event_type: ClassVar[str] = "cradle.registry.subsidy_list.reviewed"
    decision: Literal["approve", "return"]
    note: text(2000)


class SubsidyListPublished(SubsidyListFacts):
    event_type: ClassVar[str] = "cradle.registry.subsidy_list.published"


class SubsidyPaymentRecorded(DomainEvent):
    """One line paid: its facility (and the operator owning it) and its district may see it."""

    event_type: ClassVar[str] = "cradle.registry.subsidy_payment.recorded"
    line_id: Uuid
    list_id: Uuid
    month: Month
    for_month: Month
    facility_id: Uuid
    district_code: DistrictCode
    amount_fen: Fen
    paid_fen: Fen
    paid_on: date
    reference: text(64, min_length=1)
    occurred_at: datetime

    def subject_id(self) -> str:
        return self.line_id


EVENTS: tuple[type[DomainEvent], ...] = (
    FacilitySubmitted,
    FacilityReviewed,
    FacilityApproved,
    FacilityRejected,
    FacilitySuspended,
    FacilityClosed,
    FacilityReinstated,
    FacilityUpdated,
    EnrolmentUpdated,
    AssessmentRecorded,
    ChangeRequestOpened,
    ChangeRequestDecided,
    FeesPublished,
    EntryHealthChecksReported,
    HealthAssessmentRecorded,
    QualityFrameworkPublished,
    SubsidyListComputed,
    SubsidyListReviewed,
    SubsidyListPublished,
    SubsidyPaymentRecorded,
)
