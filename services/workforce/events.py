"""Events the workforce publishes. Practitioners are named by id: no event carries an ID number,
a phone number or a name (docs/EVENTS.md)."""

from __future__ import annotations

from datetime import date, datetime
from typing import ClassVar

from pydantic import BaseModel

from shared.events.envelope import DomainEvent


class PractitionerRegistered(DomainEvent):
    event_type: ClassVar[str] = "cradle.workforce.practitioner.registered"

    practitioner_id: str
    nationality: str
    registered_at: datetime

    def subject_id(self) -> str:
        return self.practitioner_id


class CertificateAdded(DomainEvent):
    event_type: ClassVar[str] = "cradle.workforce.certificate.added"

    certificate_id: str
    practitioner_id: str
    type: str
    issued_on: date
    expires_on: date

    def subject_id(self) -> str:
        return self.certificate_id


class CertificateExpired(DomainEvent):
    event_type: ClassVar[str] = "cradle.workforce.certificate.expired"

    certificate_id: str
    practitioner_id: str
    type: str
    expired_on: date
    employed_at_facility_ids: list[str]

    def subject_id(self) -> str:
        return self.certificate_id


class EmploymentStarted(DomainEvent):
    event_type: ClassVar[str] = "cradle.workforce.employment.started"

    employment_id: str
    practitioner_id: str
    facility_id: str
    district_code: str
    role: str
    start_date: date
    contract_type: str
    social_insurance_paid: bool

    def subject_id(self) -> str:
        return self.employment_id


class EmploymentEnded(DomainEvent):
    event_type: ClassVar[str] = "cradle.workforce.employment.ended"

    employment_id: str
    practitioner_id: str
    facility_id: str
    district_code: str
    role: str
    end_date: date
    reason: str

    def subject_id(self) -> str:
        return self.employment_id


class AgeClassStaffingFacts(BaseModel):
    age_class: str
    children: int
    carers: int
    carers_required: int


class StaffingAssessed(DomainEvent):
    """A facility's staffing after a change to its employments or its enrolment."""

    event_type: ClassVar[str] = "cradle.workforce.staffing.assessed"

    facility_id: str
    district_code: str
    met: bool
    shortfall: int  # carers missing across the age classes
    classes: list[AgeClassStaffingFacts]
    assessed_at: datetime

    def subject_id(self) -> str:
        return self.facility_id


class HireBlocked(DomainEvent):
    event_type: ClassVar[str] = "cradle.workforce.hire.blocked"

    facility_id: str
    district_code: str
    practitioner_id: str
    reason: str  # ban | background_check
    blocked_at: datetime

    def subject_id(self) -> str:
        return self.practitioner_id


class BannedAt(BaseModel):
    facility_id: str
    district_code: str
    employment_id: str


class BanIssued(DomainEvent):
    event_type: ClassVar[str] = "cradle.workforce.ban.issued"

    ban_id: str
    role: str
    decision_ref: str
    incident_id: str | None
    issued_at: datetime
    practitioner_id: str | None
    facilities: list[BannedAt]  # the facilities whose employment of the person this ban ended

    def subject_id(self) -> str:
        return self.ban_id


class BanRescinded(DomainEvent):
    event_type: ClassVar[str] = "cradle.workforce.ban.rescinded"

    ban_id: str
    reason: str
    authority_ref: str
    rescinded_at: datetime

    def subject_id(self) -> str:
        return self.ban_id


class BanNotificationUnacknowledged(DomainEvent):
    event_type: ClassVar[str] = "cradle.workforce.ban_notification.unacknowledged"

    ban_id: str
    facility_id: str
    district_code: str
    notified_at: datetime

    def subject_id(self) -> str:
        return self.ban_id


class TrainingRecorded(DomainEvent):
    event_type: ClassVar[str] = "cradle.workforce.training.recorded"

    training_id: str
    practitioner_id: str
    category: str
    hours: float
    trained_on: date

    def subject_id(self) -> str:
        return self.training_id
