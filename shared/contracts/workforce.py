"""Events the workforce publishes. Practitioners are named by id: no event carries an ID number,
a phone number or a name."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, Field, StringConstraints

from shared.contracts.types import Code, Count, DecisionRef, DistrictCode, Reason, Uuid
from shared.events.envelope import DomainEvent

CertificateType = Literal[
    "infant_carer", "childcare_worker", "health_worker", "teacher", "director", "health"
]
# provisional: its background check (or health certificate) pending; suspended: a flagged check,
# until the district decides; cleared: neither.
Standing = Literal["provisional", "cleared", "suspended"]
BanRole = Literal["abuser", "responsible_manager"]


class PractitionerRegistered(DomainEvent):
    event_type: ClassVar[str] = "cradle.workforce.practitioner.registered"

    practitioner_id: Uuid
    nationality: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
    registered_at: datetime

    def subject_id(self) -> str:
        return self.practitioner_id


class CertificateAdded(DomainEvent):
    event_type: ClassVar[str] = "cradle.workforce.certificate.added"

    certificate_id: Uuid
    practitioner_id: Uuid
    type: CertificateType
    issued_on: date
    expires_on: date

    def subject_id(self) -> str:
        return self.certificate_id


class CertificateExpired(DomainEvent):
    event_type: ClassVar[str] = "cradle.workforce.certificate.expired"

    certificate_id: Uuid
    practitioner_id: Uuid
    type: CertificateType
    expired_on: date
    employed_at_facility_ids: list[Uuid]

    def subject_id(self) -> str:
        return self.certificate_id


class EmploymentStarted(DomainEvent):
    event_type: ClassVar[str] = "cradle.workforce.employment.started"

    employment_id: Uuid
    practitioner_id: Uuid
    facility_id: Uuid
    district_code: DistrictCode
    role: Code
    start_date: date
    contract_type: Code
    social_insurance_paid: bool
    standing: Standing = "cleared"

    def subject_id(self) -> str:
        return self.employment_id


class EmploymentEnded(DomainEvent):
    event_type: ClassVar[str] = "cradle.workforce.employment.ended"

    employment_id: Uuid
    practitioner_id: Uuid
    facility_id: Uuid
    district_code: DistrictCode
    role: Code
    end_date: date
    reason: Code  # resigned, dismissed, …, ban

    def subject_id(self) -> str:
        return self.employment_id


class EmploymentUpdated(DomainEvent):
    """The contract type or social insurance (社保) of an employment changed."""

    event_type: ClassVar[str] = "cradle.workforce.employment.updated"

    employment_id: Uuid
    practitioner_id: Uuid
    facility_id: Uuid
    district_code: DistrictCode
    contract_type: Code
    social_insurance_paid: bool
    social_insurance_since: date | None = None
    version: Count
    updated_at: datetime

    def subject_id(self) -> str:
        return self.employment_id


class EmploymentFlagged(DomainEvent):
    """Its holder's health certificate expired: the facility must not let them work until a valid
    one is recorded."""

    event_type: ClassVar[str] = "cradle.workforce.employment.flagged"

    employment_id: Uuid
    practitioner_id: Uuid
    facility_id: Uuid
    district_code: DistrictCode
    reason: Literal["health_certificate_expired"]
    flagged_on: date

    def subject_id(self) -> str:
        return self.employment_id


class EmploymentSuspended(DomainEvent):
    """A flagged background check suspended the employment; the district decides by `decide_by`,
    else `default_action` is taken."""

    event_type: ClassVar[str] = "cradle.workforce.employment.suspended"

    employment_id: Uuid
    practitioner_id: Uuid
    facility_id: Uuid
    district_code: DistrictCode
    background_check_id: Uuid
    suspended_at: datetime
    decide_by: datetime
    default_action: Literal["end", "reinstate"]

    def subject_id(self) -> str:
        return self.employment_id


class EmploymentReinstated(DomainEvent):
    """A suspended employment goes on: the district's decision, or the default one."""

    event_type: ClassVar[str] = "cradle.workforce.employment.reinstated"

    employment_id: Uuid
    practitioner_id: Uuid
    facility_id: Uuid
    district_code: DistrictCode
    decided_by: Literal["district", "default"]
    reinstated_at: datetime

    def subject_id(self) -> str:
        return self.employment_id


class BackgroundCheckRequested(DomainEvent):
    """资格审查 asked of POLICE: at a hire (with the employment and its facility), by an employer, or
    by the annual re-check."""

    event_type: ClassVar[str] = "cradle.workforce.background_check.requested"

    background_check_id: Uuid
    practitioner_id: Uuid
    reason: Literal["hire", "annual", "other"]
    employment_id: Uuid | None = None
    facility_id: Uuid | None = None
    district_code: DistrictCode | None = None
    requested_at: datetime

    def subject_id(self) -> str:
        return self.background_check_id


class AgeClassStaffingFacts(BaseModel):
    age_class: Literal["infant", "toddler", "preschool"]
    children: Count
    carers: Count
    carers_required: Count


class StaffingAssessed(DomainEvent):
    """A facility's staffing after a change to its employments or its enrolment."""

    event_type: ClassVar[str] = "cradle.workforce.staffing.assessed"

    facility_id: Uuid
    district_code: DistrictCode
    met: bool
    shortfall: Count  # carers missing across the age classes
    classes: Annotated[list[AgeClassStaffingFacts], Field(max_length=3)]
    assessed_at: datetime

    def subject_id(self) -> str:
        return self.facility_id


class HireBlocked(DomainEvent):
    event_type: ClassVar[str] = "cradle.workforce.hire.blocked"

    facility_id: Uuid
    district_code: DistrictCode
    practitioner_id: Uuid
    reason: Literal["ban", "background_check"]
    blocked_at: datetime

    def subject_id(self) -> str:
        return self.practitioner_id


class BannedAt(BaseModel):
    facility_id: Uuid
    district_code: DistrictCode
    employment_id: Uuid


class BanIssued(DomainEvent):
    event_type: ClassVar[str] = "cradle.workforce.ban.issued"

    ban_id: Uuid
    role: BanRole
    decision_ref: DecisionRef
    incident_id: Uuid | None = None
    issued_at: datetime
    practitioner_id: Uuid | None = None
    facilities: list[BannedAt]  # the facilities whose employment of the person this ban ended

    def subject_id(self) -> str:
        return self.ban_id


class BanRescinded(DomainEvent):
    event_type: ClassVar[str] = "cradle.workforce.ban.rescinded"

    ban_id: Uuid
    reason: Reason
    authority_ref: DecisionRef
    rescinded_at: datetime

    def subject_id(self) -> str:
        return self.ban_id


class BanNotificationUnacknowledged(DomainEvent):
    event_type: ClassVar[str] = "cradle.workforce.ban_notification.unacknowledged"

    ban_id: Uuid
    facility_id: Uuid
    district_code: DistrictCode
    notified_at: datetime

    def subject_id(self) -> str:
        return self.ban_id


class TrainingRecorded(DomainEvent):
    event_type: ClassVar[str] = "cradle.workforce.training.recorded"

    training_id: Uuid
    practitioner_id: Uuid
    category: Code
    hours: Annotated[float, Field(gt=0, le=200)]
    trained_on: date

    def subject_id(self) -> str:
        return self.training_id


EVENTS: tuple[type[DomainEvent], ...] = (
    PractitionerRegistered,
    CertificateAdded,
    CertificateExpired,
    EmploymentStarted,
    EmploymentEnded,
    EmploymentUpdated,
    EmploymentFlagged,
    EmploymentSuspended,
    EmploymentReinstated,
    BackgroundCheckRequested,
    StaffingAssessed,
    HireBlocked,
    BanIssued,
    BanRescinded,
    BanNotificationUnacknowledged,
    TrainingRecorded,
)
