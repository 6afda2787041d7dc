"""Events the registry publishes (contracts in docs/EVENTS.md)."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import BaseModel

from shared.events.envelope import DomainEvent


class Places(BaseModel):
    infant: int
    toddler: int
    preschool: int


class FacilityFacts(DomainEvent):
    """The facility's current facts, carried by every facility event for the others' projections."""

    facility_id: str
    name: str
    kind: str
    inclusive: bool
    has_nursery_class: bool
    district_code: str
    town_code: str
    status: str
    license_no: str | None
    owner_client_id: str | None
    capacity: Places
    enrolment: Places
    opening_hours: list[dict[str, object]]
    version: int
    occurred_at: datetime

    def subject_id(self) -> str:
        return self.facility_id


class FacilitySubmitted(FacilityFacts):
    event_type: ClassVar[str] = "cradle.registry.facility.submitted"


class ReviewFacts(BaseModel):
    department: str
    decision: str
    note: str


class FacilityReviewed(FacilityFacts):
    event_type: ClassVar[str] = "cradle.registry.facility.reviewed"
    review: ReviewFacts


class FacilityApproved(FacilityFacts):
    event_type: ClassVar[str] = "cradle.registry.facility.approved"
    approved_at: datetime


class FacilityRejected(FacilityFacts):
    event_type: ClassVar[str] = "cradle.registry.facility.rejected"
    reasons: list[str]


class FacilitySuspended(FacilityFacts):
    event_type: ClassVar[str] = "cradle.registry.facility.suspended"
    reason: str


class FacilityClosed(FacilityFacts):
    event_type: ClassVar[str] = "cradle.registry.facility.closed"
    reason: str


class FacilityReinstated(FacilityFacts):
    event_type: ClassVar[str] = "cradle.registry.facility.reinstated"
    reason: str


class FacilityUpdated(FacilityFacts):
    event_type: ClassVar[str] = "cradle.registry.facility.updated"


class EnrolmentUpdated(FacilityFacts):
    event_type: ClassVar[str] = "cradle.registry.enrolment.updated"
    month: str


class AssessmentFacts(BaseModel):
    id: str
    method: str
    grade: str
    assessed_on: str


class AssessmentRecorded(FacilityFacts):
    event_type: ClassVar[str] = "cradle.registry.assessment.recorded"
    assessment: AssessmentFacts
