"""workforce's tables, in its own metadata. Personal data is stored encrypted (`*_encrypted` with
its `*_key_id`), found by keyed hash (`id_hash`) and shown masked (`*_masked`)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from shared.events.tables import inbox_table, outbox_table
from shared.idempotency import idempotency_table
from shared.pii_audit import PiiAccessRecord


class WorkforceModel(SQLModel, registry=registry()):
    pass


metadata = WorkforceModel.metadata
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
idempotency = idempotency_table(metadata)


def _at(*, nullable: bool = False, index: bool = False) -> Column[datetime]:
    return Column(DateTime(timezone=True), nullable=nullable, index=index)


class FacilityProjection(WorkforceModel, table=True):
    """The workforce's own view of registry facilities, fed by registry events: hiring checks read
    this, never the registry's tables."""

    __tablename__ = "facility_projection"

    facility_id: str = Field(primary_key=True, max_length=36)
    name: str = Field(max_length=200)
    district_code: str = Field(max_length=6, index=True)
    town_code: str = Field(max_length=9)
    status: str = Field(max_length=16)
    owner_client_id: str | None = Field(default=None, max_length=64)
    source_event_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    capacity_infant: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    capacity_toddler: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    capacity_preschool: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    enrolment_infant: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    enrolment_toddler: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    enrolment_preschool: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    version: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class Person(WorkforceModel, table=True):
    """One row per national ID number ever seen (registered or banned), keyed by its keyed hash.
    Hiring and banning both lock this row first, so the two never interleave for one person."""

    id_hash: str = Field(primary_key=True, max_length=64)
    created_at: datetime = Field(sa_column=_at())


class Practitioner(WorkforceModel, table=True):
    id: str = Field(primary_key=True, max_length=36)
    id_hash: str = Field(
        sa_column=Column(String(64), ForeignKey("person.id_hash"), nullable=False, unique=True)
    )
    id_number_key_id: str = Field(max_length=32)
    id_number_encrypted: str = Field(sa_column=Column(Text, nullable=False))
    id_number_masked: str = Field(max_length=18)
    name: str = Field(max_length=100)
    phone_key_id: str | None = Field(default=None, max_length=32)
    phone_encrypted: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    phone_masked: str | None = Field(default=None, max_length=32)
    nationality: str = Field(max_length=2)
    work_permit_no: str | None = Field(default=None, max_length=64)
    grade: int | None = None
    registered_by: str = Field(max_length=64, index=True)
    version: int = 1
    created_at: datetime = Field(sa_column=_at())
    updated_at: datetime = Field(sa_column=_at())


class PractitionerAccess(WorkforceModel, table=True):
    """A client that registered this person by ID number (the first registrant, and each one after
    whose registration found the existing record): the practitioner is visible to it, so it may hire
    them. Nothing else about the person comes with it (their other employers stay hidden)."""

    __tablename__ = "practitioner_access"
    __table_args__ = (UniqueConstraint("practitioner_id", "client_id", name="uq_practitioner_access"),)

    id: str = Field(primary_key=True, max_length=36)
    practitioner_id: str = Field(foreign_key="practitioner.id", max_length=36)
    client_id: str = Field(max_length=64, index=True)
    granted_at: datetime = Field(sa_column=_at())


class GradeChange(WorkforceModel, table=True):
    """岗位分级 history: every level a practitioner held, and who set it."""

    __tablename__ = "grade_change"

    id: str = Field(primary_key=True, max_length=36)
    practitioner_id: str = Field(foreign_key="practitioner.id", index=True, max_length=36)
    level: int
    reason: str = Field(max_length=300)
    changed_by: str = Field(max_length=64)
    changed_at: datetime = Field(sa_column=_at())


class Certificate(WorkforceModel, table=True):
    __table_args__ = (UniqueConstraint("practitioner_id", "type", "number", name="uq_certificate_number"),)

    id: str = Field(primary_key=True, max_length=36)
    practitioner_id: str = Field(foreign_key="practitioner.id", index=True, max_length=36)
    type: str = Field(max_length=32)
    number: str = Field(max_length=64)
    issuer: str = Field(max_length=200)
    issued_on: date
    expires_on: date = Field(index=True)
    recorded_by: str = Field(max_length=64)
    created_at: datetime = Field(sa_column=_at())
    expiry_announced_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))


class Employment(WorkforceModel, table=True):
    __table_args__ = (
        Index("ix_employment_practitioner_status", "practitioner_id", "status"),
        Index("ix_employment_facility_status", "facility_id", "status"),
        Index("ix_employment_standing", "standing", "suspended_at"),
        Index("ix_employment_background_check", "background_check_id"),
    )

    id: str = Field(primary_key=True, max_length=36)
    practitioner_id: str = Field(foreign_key="practitioner.id", max_length=36)
    facility_id: str = Field(foreign_key="facility_projection.facility_id", max_length=36)
    district_code: str = Field(max_length=6)
    role: str = Field(max_length=32)
    age_class: str | None = Field(default=None, max_length=16)
    contract_type: str = Field(max_length=32)
    social_insurance_paid: bool
    start_date: date
    end_date: date | None = None
    end_reason: str | None = Field(default=None, max_length=32)
    end_note: str | None = Field(default=None, max_length=300)
    status: str = Field(max_length=8)  # active | ended
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(sa_column=_at())
    ended_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    ended_by: str | None = Field(default=None, max_length=64)
    # provisional (a check or a health certificate pending) | cleared | suspended (a flagged check,
    # until the district decides). Only cleared employments count toward the staffing ratios.
    standing: str = Field(default="cleared", max_length=16, sa_column_kwargs={"server_default": "cleared"})
    background_check_id: str | None = Field(default=None, max_length=36)
    health_certificate_pending: bool = Field(default=False, sa_column_kwargs={"server_default": "0"})
    health_flagged_on: date | None = None  # the day its holder's health certificate was found expired
    suspended_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    social_insurance_since: date | None = None
    version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})


class EmploymentChange(WorkforceModel, table=True):
    """The history of an employment after its hire: each change of standing, contract or social
    insurance, with what changed, who changed it and why."""

    __tablename__ = "employment_change"
    __table_args__ = (Index("ix_employment_change_employment", "employment_id", "changed_at"),)

    id: str = Field(primary_key=True, max_length=36)
    employment_id: str = Field(foreign_key="employment.id", max_length=36)
    kind: str = Field(max_length=32)
    changes: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    note: str | None = Field(default=None, max_length=1000)
    changed_by: str = Field(max_length=64)
    changed_at: datetime = Field(sa_column=_at())


class HireAttempt(WorkforceModel, table=True):
    """A refused hire, kept so the district sees who tried to employ whom."""

    __tablename__ = "hire_attempt"

    id: str = Field(primary_key=True, max_length=36)
    practitioner_id: str = Field(foreign_key="practitioner.id", index=True, max_length=36)
    facility_id: str = Field(max_length=36, index=True)
    district_code: str = Field(max_length=6)
    role: str = Field(max_length=32)
    reason: str = Field(max_length=32)  # ban | background_check
    client_id: str = Field(max_length=64)
    attempted_at: datetime = Field(sa_column=_at())


class Ban(WorkforceModel, table=True):
    """终身禁入. Never deleted; a rescission is a record of its own beside it."""

    __table_args__ = (UniqueConstraint("id_hash", "decision_ref", name="uq_ban_person_decision"),)

    id: str = Field(primary_key=True, max_length=36)
    id_hash: str = Field(
        sa_column=Column(String(64), ForeignKey("person.id_hash"), nullable=False, index=True)
    )
    practitioner_id: str | None = Field(default=None, foreign_key="practitioner.id", max_length=36)
    name: str = Field(max_length=100)
    id_number_key_id: str = Field(max_length=32)
    id_number_encrypted: str = Field(sa_column=Column(Text, nullable=False))
    id_number_masked: str = Field(max_length=18)
    reason: str = Field(max_length=1000)
    decision_ref: str = Field(max_length=100)
    role: str = Field(max_length=32)  # abuser | responsible_manager
    incident_id: str | None = Field(default=None, max_length=36, index=True)
    status: str = Field(max_length=16)  # active | rescinded
    issued_by: str = Field(max_length=64)
    issued_at: datetime = Field(sa_column=_at())


class BanRescission(WorkforceModel, table=True):
    __tablename__ = "ban_rescission"

    id: str = Field(primary_key=True, max_length=36)
    ban_id: str = Field(foreign_key="ban.id", unique=True, max_length=36)
    reason: str = Field(max_length=1000)
    authority_ref: str = Field(max_length=100)
    rescinded_by: str = Field(max_length=64)
    rescinded_at: datetime = Field(sa_column=_at())


class BanNotification(WorkforceModel, table=True):
    """A facility told that its employee was banned; it must acknowledge, or its district is told."""

    __tablename__ = "ban_notification"
    __table_args__ = (
        UniqueConstraint("ban_id", "facility_id", name="uq_ban_notification_facility"),
        Index("ix_ban_notification_open", "acknowledged_at", "escalated_at"),
    )

    id: str = Field(primary_key=True, max_length=36)
    ban_id: str = Field(foreign_key="ban.id", max_length=36)
    facility_id: str = Field(max_length=36, index=True)
    district_code: str = Field(max_length=6)
    employment_id: str = Field(max_length=36)
    notified_at: datetime = Field(sa_column=_at())
    acknowledged_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    acknowledged_by: str | None = Field(default=None, max_length=64)
    escalated_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))


class BanCheck(WorkforceModel, table=True):
    """The audit of every ban check, refused ones included."""

    __tablename__ = "ban_check"

    id: str = Field(primary_key=True, max_length=36)
    checked_at: datetime = Field(sa_column=_at(index=True))
    client_id: str = Field(max_length=64, index=True)
    client_kind: str = Field(max_length=16)
    outcome: str = Field(max_length=16)  # banned | not_banned | refused | invalid
    id_hash: str | None = Field(default=None, max_length=64)
    purpose: str | None = Field(default=None, max_length=300)
    request_id: str | None = Field(default=None, max_length=128)


class PiiAccess(WorkforceModel, PiiAccessRecord, table=True):
    """The audit of every unmasked read of personal data (shared/pii_audit.py)."""

    __tablename__ = "pii_access"


class BackgroundCheck(WorkforceModel, table=True):
    """资格审查: requested at hiring or by the annual re-check, answered by POLICE. A flagged answer
    blocks hires until resolved."""

    __tablename__ = "background_check"
    __table_args__ = (Index("ix_background_check_practitioner_status", "practitioner_id", "status"),)

    id: str = Field(primary_key=True, max_length=36)
    practitioner_id: str = Field(foreign_key="practitioner.id", max_length=36)
    employment_id: str | None = Field(default=None, max_length=36)
    reason: str = Field(max_length=16)  # hire | annual | other
    status: str = Field(max_length=16, index=True)  # pending | clear | flagged | resolved
    requested_by: str = Field(max_length=64)
    requested_at: datetime = Field(sa_column=_at())
    answered_by: str | None = Field(default=None, max_length=64)
    answered_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    answer_note: str | None = Field(default=None, max_length=1000)
    resolved_by: str | None = Field(default=None, max_length=64)
    resolved_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    resolution_note: str | None = Field(default=None, max_length=1000)


class Training(WorkforceModel, table=True):
    __table_args__ = (Index("ix_training_practitioner_on", "practitioner_id", "trained_on"),)

    id: str = Field(primary_key=True, max_length=36)
    practitioner_id: str = Field(foreign_key="practitioner.id", max_length=36)
    category: str = Field(max_length=16)  # skills | ethics | other
    hours: float
    trained_on: date = Field(index=True)
    provider: str = Field(max_length=200)
    recorded_by: str = Field(max_length=64)
    created_at: datetime = Field(sa_column=_at())


class Recheck(WorkforceModel, table=True):
    """The annual re-check (未成年人保护法 Art. 62) of one employed practitioner for one year."""

    __table_args__ = (UniqueConstraint("practitioner_id", "year", name="uq_recheck_practitioner_year"),)

    id: str = Field(primary_key=True, max_length=36)
    practitioner_id: str = Field(foreign_key="practitioner.id", max_length=36)
    year: int = Field(index=True)
    checked_at: datetime = Field(sa_column=_at())
    banned: bool
    background_check_id: str | None = Field(default=None, max_length=36)
