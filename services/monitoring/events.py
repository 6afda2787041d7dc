"""Events the monitoring service publishes (contracts in docs/EVENTS.md). None carries personal
data: practitioners are named by their workforce id."""

from __future__ import annotations

from datetime import date, datetime
from typing import ClassVar

from pydantic import BaseModel

from shared.events.envelope import DomainEvent


class CameraRegistered(DomainEvent):
    event_type: ClassVar[str] = "cradle.monitoring.camera.registered"
    camera_id: str
    facility_id: str
    district_code: str
    location: str
    vendor: str
    registered_at: datetime

    def subject_id(self) -> str:
        return self.camera_id


class AlertFacts(DomainEvent):
    alert_id: str
    facility_id: str
    district_code: str
    camera_id: str | None
    type: str
    severity: str
    status: str
    count: int

    def subject_id(self) -> str:
        return self.alert_id


class AlertRaised(AlertFacts):
    event_type: ClassVar[str] = "cradle.monitoring.alert.raised"
    source: str
    raised_at: datetime


class AlertChanged(AlertFacts):
    """Acknowledged, resolved or escalated."""

    event_type: ClassVar[str] = "cradle.monitoring.alert.changed"
    changed_at: datetime
    incident_id: str | None = None


class IncidentReported(DomainEvent):
    event_type: ClassVar[str] = "cradle.monitoring.incident.reported"
    incident_id: str
    facility_id: str
    district_code: str
    category: str
    severity: str
    occurred_at: datetime
    reported_at: datetime
    reported_late: bool
    alert_id: str | None = None

    def subject_id(self) -> str:
        return self.incident_id


class IncidentConfirmed(DomainEvent):
    event_type: ClassVar[str] = "cradle.monitoring.incident.confirmed"
    incident_id: str
    facility_id: str
    district_code: str
    category: str
    decision_ref: str
    decided_at: datetime
    abuser_practitioner_ids: list[str]
    responsible_manager_ids: list[str]

    def subject_id(self) -> str:
        return self.incident_id


class IncidentUnfounded(DomainEvent):
    event_type: ClassVar[str] = "cradle.monitoring.incident.unfounded"
    incident_id: str
    facility_id: str
    district_code: str
    category: str
    decision_ref: str
    decided_at: datetime

    def subject_id(self) -> str:
        return self.incident_id


class DeadlineMissed(DomainEvent):
    """A facility reported late, or a district did not record findings in time (a credit event)."""

    event_type: ClassVar[str] = "cradle.monitoring.deadline.missed"
    incident_id: str
    facility_id: str
    district_code: str
    deadline: str  # report | finding
    due_at: datetime
    detected_at: datetime

    def subject_id(self) -> str:
        return self.incident_id


class InspectionItem(BaseModel):
    code: str
    passed: bool
    note: str | None = None


class InspectionCompleted(DomainEvent):
    event_type: ClassVar[str] = "cradle.monitoring.inspection.completed"
    inspection_id: str
    facility_id: str
    district_code: str
    inspected_on: date
    outcome: str
    items: list[InspectionItem]
    rectify_by: date | None = None

    def subject_id(self) -> str:
        return self.inspection_id


class RectificationOverdue(DomainEvent):
    event_type: ClassVar[str] = "cradle.monitoring.rectification.overdue"
    inspection_id: str
    facility_id: str
    district_code: str
    rectify_by: date

    def subject_id(self) -> str:
        return self.inspection_id


class RectificationCompleted(DomainEvent):
    event_type: ClassVar[str] = "cradle.monitoring.rectification.completed"
    inspection_id: str
    facility_id: str
    rectified_on: date

    def subject_id(self) -> str:
        return self.inspection_id


class InspectionPlanDrawn(DomainEvent):
    event_type: ClassVar[str] = "cradle.monitoring.inspection_plan.drawn"
    plan_id: str
    district_code: str
    month: str
    seed: str
    facility_ids: list[str]

    def subject_id(self) -> str:
        return self.plan_id
