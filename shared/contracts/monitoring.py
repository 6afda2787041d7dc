"""Events the monitoring service publishes. None carries personal data: practitioners are named by
their workforce id."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, Field

from shared.contracts.types import INT32_MAX, Code, DecisionRef, DistrictCode, Month, Uuid, text
from shared.events.envelope import DomainEvent

IncidentCategory = Literal["abuse", "injury", "illness_outbreak", "food_safety", "fire", "other"]
Severity = Literal["low", "medium", "high", "critical"]
ItemCode = Literal[
    "food_safety", "health_care", "fire_safety", "premises", "staffing", "records", "video_coverage"
]
# The people a confirmed finding names, as the workforce knows them; at most 50, as the API takes.
PractitionerIds = Annotated[list[Uuid], Field(max_length=50)]


class CameraRegistered(DomainEvent):
    event_type: ClassVar[str] = "cradle.monitoring.camera.registered"
    camera_id: Uuid
    facility_id: Uuid
    district_code: DistrictCode
    location: Code
    vendor: text(100)
    registered_at: datetime

    def subject_id(self) -> str:
        return self.camera_id


class AlertFacts(DomainEvent):
    alert_id: Uuid
    facility_id: Uuid
    district_code: DistrictCode
    camera_id: Uuid | None = None
    type: text(48, min_length=1)
    severity: Literal["info", "low", "medium", "high", "critical"]
    status: Literal["open", "acknowledged", "resolved", "escalated"]
    count: Annotated[int, Field(ge=1, le=INT32_MAX)]

    def subject_id(self) -> str:
        return self.alert_id


class AlertRaised(AlertFacts):
    event_type: ClassVar[str] = "cradle.monitoring.alert.raised"
    source: text(16, min_length=1)  # cctv, offline, workforce, deadline, …
    raised_at: datetime


class AlertChanged(AlertFacts):
    """Acknowledged, resolved or escalated."""

    event_type: ClassVar[str] = "cradle.monitoring.alert.changed"
    changed_at: datetime
    incident_id: Uuid | None = None


class IncidentReported(DomainEvent):
    event_type: ClassVar[str] = "cradle.monitoring.incident.reported"
    incident_id: Uuid
    facility_id: Uuid
    district_code: DistrictCode
    category: IncidentCategory
    severity: Severity
    occurred_at: datetime
    reported_at: datetime
    reported_late: bool
    alert_id: Uuid | None = None

    def subject_id(self) -> str:
        return self.incident_id


class IncidentConfirmed(DomainEvent):
    event_type: ClassVar[str] = "cradle.monitoring.incident.confirmed"
    incident_id: Uuid
    facility_id: Uuid
    district_code: DistrictCode
    category: IncidentCategory
    decision_ref: DecisionRef
    decided_at: datetime
    abuser_practitioner_ids: PractitionerIds
    responsible_manager_ids: PractitionerIds
    # When it happened: the workforce bans only people employed there then or later. None from a
    # producer that predates the field (the decision's time stands in).
    occurred_at: datetime | None = None

    def subject_id(self) -> str:
        return self.incident_id


class IncidentUnfounded(DomainEvent):
    event_type: ClassVar[str] = "cradle.monitoring.incident.unfounded"
    incident_id: Uuid
    facility_id: Uuid
    district_code: DistrictCode
    category: IncidentCategory
    decision_ref: DecisionRef
    decided_at: datetime

    def subject_id(self) -> str:
        return self.incident_id


class FindingProposed(DomainEvent):
    """A district's abuse finding, waiting for EDU's confirmation: it names nobody and bans nobody."""

    event_type: ClassVar[str] = "cradle.monitoring.finding.proposed"
    finding_id: Uuid
    incident_id: Uuid
    facility_id: Uuid
    district_code: DistrictCode
    category: IncidentCategory
    decision_ref: DecisionRef
    proposed_at: datetime

    def subject_id(self) -> str:
        return self.incident_id


class FindingRejected(DomainEvent):
    """EDU rejected a proposed finding: the incident is open for a new finding."""

    event_type: ClassVar[str] = "cradle.monitoring.finding.rejected"
    finding_id: Uuid
    incident_id: Uuid
    facility_id: Uuid
    district_code: DistrictCode
    reason: text(2000, min_length=1)
    rejected_at: datetime

    def subject_id(self) -> str:
        return self.incident_id


class DeadlineMissed(DomainEvent):
    """A facility reported late, or a district did not record findings in time (a credit event)."""

    event_type: ClassVar[str] = "cradle.monitoring.deadline.missed"
    incident_id: Uuid
    facility_id: Uuid
    district_code: DistrictCode
    deadline: Literal["report", "finding"]
    due_at: datetime
    detected_at: datetime

    def subject_id(self) -> str:
        return self.incident_id


class InspectionItem(BaseModel):
    code: ItemCode
    passed: bool
    note: text(2000) | None = None


class InspectionCompleted(DomainEvent):
    event_type: ClassVar[str] = "cradle.monitoring.inspection.completed"
    inspection_id: Uuid
    facility_id: Uuid
    district_code: DistrictCode
    inspected_on: date
    outcome: Literal["pass", "rectify", "fail"]
    items: Annotated[list[InspectionItem], Field(max_length=7)]
    rectify_by: date | None = None

    def subject_id(self) -> str:
        return self.inspection_id


class RectificationOverdue(DomainEvent):
    event_type: ClassVar[str] = "cradle.monitoring.rectification.overdue"
    inspection_id: Uuid
    facility_id: Uuid
    district_code: DistrictCode
    rectify_by: date

    def subject_id(self) -> str:
        return self.inspection_id


class RectificationCompleted(DomainEvent):
    event_type: ClassVar[str] = "cradle.monitoring.rectification.completed"
    inspection_id: Uuid
    facility_id: Uuid
    rectified_on: date

    def subject_id(self) -> str:
        return self.inspection_id


class InspectionPlanDrawn(DomainEvent):
    event_type: ClassVar[str] = "cradle.monitoring.inspection_plan.drawn"
    plan_id: Uuid
    district_code: DistrictCode
    month: Month
    seed: text(64, min_length=1)
    facility_ids: list[Uuid]

    def subject_id(self) -> str:
        return self.plan_id


ComplaintCategory = Literal[
    "care", "safety", "health_hygiene", "food", "fees", "staff_conduct", "premises", "other"
]
ComplaintOutcome = Literal["founded", "partly_founded", "unfounded"]


class ComplaintFacts(DomainEvent):
    """A complaint (投诉) about a facility, as its district handles it. Never the complainant's name,
    phone or account, nor the complaint's text: only what it is about and where it stands."""

    complaint_id: Uuid
    facility_id: Uuid
    district_code: DistrictCode
    category: ComplaintCategory

    def subject_id(self) -> str:
        return self.complaint_id


class ComplaintLodged(ComplaintFacts):
    event_type: ClassVar[str] = "cradle.monitoring.complaint.lodged"
    lodged_at: datetime
    acknowledge_due_at: datetime
    answer_due_at: datetime


class ComplaintAcknowledged(ComplaintFacts):
    event_type: ClassVar[str] = "cradle.monitoring.complaint.acknowledged"
    acknowledged_at: datetime


class ComplaintEscalated(ComplaintFacts):
    """Not acknowledged, or not answered, by its deadline: the city takes note."""

    event_type: ClassVar[str] = "cradle.monitoring.complaint.escalated"
    deadline: Literal["acknowledge", "answer"]
    due_at: datetime
    escalated_at: datetime


class ComplaintAnswered(ComplaintFacts):
    """The district's answer; a founded or partly founded one is a credit entry (the registry)."""

    event_type: ClassVar[str] = "cradle.monitoring.complaint.answered"
    outcome: ComplaintOutcome
    answered_at: datetime


EVENTS: tuple[type[DomainEvent], ...] = (
    CameraRegistered,
    AlertRaised,
    AlertChanged,
    IncidentReported,
    IncidentConfirmed,
    IncidentUnfounded,
    FindingProposed,
    FindingRejected,
    DeadlineMissed,
    InspectionCompleted,
    RectificationOverdue,
    RectificationCompleted,
    InspectionPlanDrawn,
    ComplaintLodged,
    ComplaintAcknowledged,
    ComplaintEscalated,
    ComplaintAnswered,
)
