"""monitoring's tables, in its own metadata.

Two halves: the watch (facility projection, cameras, CCTV events, alerts) and the casework
(incidents, inspectors, 双随机 plans, inspections). CCTV events are written with Core batches, never
as ORM objects (the ingest path, BASELINES.md)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Date, DateTime, Index, UniqueConstraint
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from shared.events.tables import inbox_table, outbox_table
from shared.idempotency import idempotency_table
from shared.pii_audit import PiiAccessRecord


class MonitoringModel(SQLModel, registry=registry()):
    pass


metadata = MonitoringModel.metadata
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
idempotency = idempotency_table(metadata)


def _at(nullable: bool = False) -> Column:
    return Column(DateTime(timezone=True), nullable=nullable)


def _json(default_factory: type = list) -> Any:
    return Field(default_factory=default_factory, sa_column=Column(JSON, nullable=False))


# ---- the watch -------------------------------------------------------------------------------


class Facility(MonitoringModel, table=True):
    """The registry's facilities as its events describe them (a projection; never written here
    otherwise). `version` lets an older event arriving late be ignored."""

    id: str = Field(primary_key=True, max_length=36)
    name: str = Field(max_length=200)
    kind: str = Field(max_length=32)
    district_code: str = Field(max_length=6, index=True)
    town_code: str = Field(max_length=9)
    status: str = Field(max_length=16)
    owner_client_id: str | None = Field(default=None, max_length=64)
    opening_hours: list[dict[str, object]] = _json()
    enrolled: int = 0  # children enrolled, all age classes (latest month)
    # From the workforce's staffing assessments: None until the first one arrives.
    staffing_in_ratio: bool | None = None
    staffing_shortfall: int = 0  # carers missing to be in ratio
    version: int
    source_event_at: datetime = Field(sa_column=_at())
    updated_at: datetime = Field(sa_column=_at())


class Camera(MonitoringModel, table=True):
    __table_args__ = (UniqueConstraint("facility_id", "external_id", name="uq_camera_external_id"),)

    id: str = Field(primary_key=True, max_length=36)
    facility_id: str = Field(foreign_key="facility.id", index=True, max_length=36)
    location: str = Field(max_length=32)  # classroom | sleeping_room | kitchen | entrance | outdoor | …
    vendor: str = Field(max_length=100)
    external_id: str = Field(max_length=100)  # the video system's own id, unique per facility
    label: str | None = Field(default=None, max_length=200)
    active: bool = True
    registered_by: str = Field(max_length=64)
    registered_at: datetime = Field(sa_column=_at())
    last_seen_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    last_event_type: str | None = Field(default=None, max_length=32)
    version: int = 1


class CctvEvent(MonitoringModel, table=True):
    """A routine or alerting event from a video system; kept `event_retention_days`, then purged.
    `event_id` is the sender's id, unique within its facility (not across the city), so a re-sent
    event is the same row and another facility's event with the same id is not.

    The key is (`id_ms`, `dedup_key`), both read from the event's identity (service/ingest.py):
    `id_ms` the milliseconds a time-ordered id begins with (UUIDv7, ULID; 0 for any other id), so such
    ids append at the index's right edge and a batch rewrites a few pages however many are stored;
    `dedup_key` 64 bits of MD5(facility_id ":" event_id), since a B-tree of 70-byte random text keys
    costs a page write per inserted event once it outgrows the cache and 8-byte keys make it about
    7x smaller. The ingest compares the stored (event_id, facility_id) of every key it did not
    insert, so a hash collision is refused by name, never taken for a duplicate."""

    __tablename__ = "cctv_event"
    # Only the indexes reads need: every extra one is paid by each of millions of inserts a day.
    __table_args__ = (Index("ix_cctv_event_received", "received_at"),)

    id_ms: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    dedup_key: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    event_id: str = Field(max_length=100)
    camera_id: str = Field(max_length=36)
    facility_id: str = Field(max_length=36)
    type: str = Field(max_length=32)
    occurred_at: datetime = Field(sa_column=_at())
    received_at: datetime = Field(sa_column=_at())
    payload: dict[str, object] = _json(dict)


class Alert(MonitoringModel, table=True):
    """Something a district should look at. Repeats of one kind on one camera within the fold
    window raise `count` instead of a new alert. `source_ref` makes event-driven alerts unique."""

    __table_args__ = (
        Index("ix_alert_district_status", "district_code", "status", "raised_at"),
        Index("ix_alert_facility_status", "facility_id", "status"),
        Index("ix_alert_fold", "camera_id", "type", "status", "last_at"),
        # The list's order (raised_at, id), for keyset pages and exports of every page.
        Index("ix_alert_facility_raised", "facility_id", "raised_at", "id"),
        Index("ix_alert_raised", "raised_at", "id"),
        UniqueConstraint("source_ref", name="uq_alert_source_ref"),
    )

    id: str = Field(primary_key=True, max_length=36)
    facility_id: str = Field(foreign_key="facility.id", max_length=36)
    district_code: str = Field(max_length=6)
    camera_id: str | None = Field(default=None, max_length=36)
    type: str = Field(max_length=48)
    severity: str = Field(max_length=16)  # critical | high | medium | low
    status: str = Field(max_length=16)  # open | acknowledged | resolved | escalated
    source: str = Field(max_length=16)  # cctv | offline | workforce | deadline | rectification
    source_ref: str | None = Field(default=None, max_length=200)
    count: int = 1
    first_at: datetime = Field(sa_column=_at())
    last_at: datetime = Field(sa_column=_at())
    raised_at: datetime = Field(sa_column=_at())
    details: dict[str, object] = _json(dict)
    incident_id: str | None = Field(default=None, max_length=36)
    version: int = 1
    updated_at: datetime = Field(sa_column=_at())


class AlertTransition(MonitoringModel, table=True):
    __tablename__ = "alert_transition"

    id: str = Field(primary_key=True, max_length=36)
    alert_id: str = Field(foreign_key="alert.id", index=True, max_length=36)
    from_status: str | None = Field(default=None, max_length=16)
    to_status: str = Field(max_length=16)
    actor: str = Field(max_length=64)
    note: str = Field(default="", max_length=2000)
    at: datetime = Field(sa_column=_at())


# ---- the casework ----------------------------------------------------------------------------


class Incident(MonitoringModel, table=True):
    """突发事件: reported, then found `confirmed` or `unfounded`. The deadline clocks are stored so a
    job can find what is late with one indexed query."""

    __table_args__ = (
        Index("ix_incident_district_status", "district_code", "status"),
        Index("ix_incident_facility", "facility_id", "occurred_at"),
        Index("ix_incident_finding_due", "status", "finding_due_at"),
        Index("ix_incident_reporter", "reporter_client_id", "reported_at"),
    )

    id: str = Field(primary_key=True, max_length=36)
    facility_id: str = Field(foreign_key="facility.id", max_length=36)
    district_code: str = Field(max_length=6)
    category: str = Field(max_length=32)  # abuse | injury | illness_outbreak | food_safety | fire | other
    severity: str = Field(max_length=16)
    status: str = Field(max_length=16)  # reported | proposed | confirmed | unfounded
    description: str = Field(default="", max_length=4000)
    practitioner_ids: list[str] = _json()
    reported_by_kind: str = Field(max_length=16)  # facility | inspector | parent | alert | district | bureau
    reporter_client_id: str = Field(max_length=64)
    alert_id: str | None = Field(default=None, max_length=36)
    occurred_at: datetime = Field(sa_column=_at())
    reported_at: datetime = Field(sa_column=_at())
    report_due_at: datetime = Field(sa_column=_at())
    reported_late: bool = False
    finding_due_at: datetime = Field(sa_column=_at())
    finding_overdue_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    outcome: str | None = Field(default=None, max_length=16)
    decision_ref: str | None = Field(default=None, max_length=200)
    decided_by: str | None = Field(default=None, max_length=64)
    decided_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    abuser_practitioner_ids: list[str] = _json()
    responsible_manager_ids: list[str] = _json()
    version: int = 1
    updated_at: datetime = Field(sa_column=_at())


class Finding(MonitoringModel, table=True):
    """Every finding recorded on an incident, kept: a district's abuse finding waits `proposed`
    until EDU confirms or rejects it (a rejected one stays, and the incident is open again); any
    other finding is `final` at once."""

    __tablename__ = "incident_finding"

    id: str = Field(primary_key=True, max_length=36)
    incident_id: str = Field(foreign_key="incident.id", index=True, max_length=36)
    status: str = Field(max_length=16)  # proposed | confirmed | rejected | final
    outcome: str = Field(max_length=16)  # confirmed | unfounded
    category: str = Field(max_length=32)
    abuser_practitioner_ids: list[str] = _json()
    responsible_manager_ids: list[str] = _json()
    decision_ref: str = Field(max_length=200)
    note: str = Field(default="", max_length=2000)
    recorded_by: str = Field(max_length=64)
    recorded_at: datetime = Field(sa_column=_at())
    reviewed_by: str | None = Field(default=None, max_length=64)
    reviewed_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    review_ref: str | None = Field(default=None, max_length=200)
    review_note: str | None = Field(default=None, max_length=2000)


class EmploymentRecord(MonitoringModel, table=True):
    """The workforce's employments as its `employment.*` events describe them (a projection; never
    written otherwise): whom a finding may name. No personal data, only ids and dates."""

    __tablename__ = "employment_projection"
    __table_args__ = (Index("ix_employment_projection_facility", "facility_id", "practitioner_id"),)

    employment_id: str = Field(primary_key=True, max_length=36)
    practitioner_id: str = Field(max_length=36)
    facility_id: str = Field(max_length=36)
    start_date: date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    end_date: date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    updated_at: datetime = Field(sa_column=_at())


class IncidentTransition(MonitoringModel, table=True):
    __tablename__ = "incident_transition"

    id: str = Field(primary_key=True, max_length=36)
    incident_id: str = Field(foreign_key="incident.id", index=True, max_length=36)
    from_status: str | None = Field(default=None, max_length=16)
    to_status: str = Field(max_length=16)
    actor: str = Field(max_length=64)
    note: str = Field(default="", max_length=2000)
    at: datetime = Field(sa_column=_at())


class Inspector(MonitoringModel, table=True):
    id: str = Field(primary_key=True, max_length=36)
    district_code: str = Field(max_length=6, index=True)
    name: str = Field(max_length=100)
    active: bool = True
    created_at: datetime = Field(sa_column=_at())


class InspectionPlan(MonitoringModel, table=True):
    """A 双随机 draw: the seed and the inputs are stored, so anyone can re-run it and compare."""

    __tablename__ = "inspection_plan"
    __table_args__ = (Index("ix_plan_district_month", "district_code", "month"),)

    id: str = Field(primary_key=True, max_length=36)
    district_code: str = Field(max_length=6)
    month: str = Field(max_length=7)  # YYYY-MM
    sample_size: int
    seed: str = Field(max_length=64)
    algorithm: str = Field(max_length=32)
    inputs: dict[str, object] = _json(dict)  # what the draw saw: candidates, weights, exclusions
    drawn_by: str = Field(max_length=64)
    drawn_at: datetime = Field(sa_column=_at())


class Inspection(MonitoringModel, table=True):
    __table_args__ = (
        Index("ix_inspection_facility_date", "facility_id", "inspected_on"),
        Index("ix_inspection_rectify", "outcome", "rectified_on", "rectify_by"),
        Index("ix_inspection_district_status", "district_code", "status"),
    )

    id: str = Field(primary_key=True, max_length=36)
    plan_id: str | None = Field(default=None, foreign_key="inspection_plan.id", index=True, max_length=36)
    facility_id: str = Field(foreign_key="facility.id", max_length=36)
    district_code: str = Field(max_length=6)
    inspector_ids: list[str] = _json()
    status: str = Field(max_length=16)  # planned | completed | cancelled (its plan was redrawn)
    outcome: str | None = Field(default=None, max_length=16)  # pass | rectify | fail
    items: list[dict[str, object]] = _json()
    inspected_on: date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    rectify_by: date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    rectified_on: date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    rectification_note: str | None = Field(default=None, max_length=2000)
    rectification_overdue_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    recorded_by: str | None = Field(default=None, max_length=64)
    version: int = 1
    created_at: datetime = Field(sa_column=_at())
    updated_at: datetime = Field(sa_column=_at())


# ---- complaints ------------------------------------------------------------------------------


class Complaint(MonitoringModel, table=True):
    """投诉 about a facility, handled by its district. The complainant's name and phone are sealed
    (AES-GCM, `complaint.name` / `complaint.phone`); an anonymous complainant follows it with its
    `reference` and a code of which only a keyed hash is kept. Both deadlines are stored, counted in
    working days, so the escalation job finds late ones with one indexed query."""

    __table_args__ = (
        Index("ix_complaint_district_status", "district_code", "status", "lodged_at"),
        Index("ix_complaint_facility", "facility_id", "lodged_at"),
        Index("ix_complaint_lodged", "lodged_at", "id"),
        Index("ix_complaint_complainant", "complainant_client_id", "lodged_at"),
        Index("ix_complaint_answer_due", "status", "answer_due_at"),
        UniqueConstraint("reference", name="uq_complaint_reference"),
    )

    id: str = Field(primary_key=True, max_length=36)
    reference: str = Field(max_length=16)
    code_hash: str | None = Field(default=None, max_length=64)  # HMAC-SHA256 hex of the code
    facility_id: str = Field(foreign_key="facility.id", max_length=36)
    district_code: str = Field(max_length=6)
    category: str = Field(max_length=32)
    description: str = Field(max_length=4000)
    complainant_kind: str = Field(max_length=16)  # parent | public | bureau
    complainant_client_id: str | None = Field(default=None, max_length=64)  # a parent's account
    name_key_id: str | None = Field(default=None, max_length=32)
    name_encrypted: str | None = Field(default=None, max_length=400)
    phone_key_id: str | None = Field(default=None, max_length=32)
    phone_encrypted: str | None = Field(default=None, max_length=200)
    lodged_by: str = Field(max_length=64)  # the client that lodged it ("public" when anonymous)
    status: str = Field(max_length=16)  # lodged | acknowledged | escalated | answered
    lodged_at: datetime = Field(sa_column=_at())
    acknowledge_due_at: datetime = Field(sa_column=_at())
    answer_due_at: datetime = Field(sa_column=_at())
    acknowledged_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    acknowledged_by: str | None = Field(default=None, max_length=64)
    acknowledge_escalated_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    answer_escalated_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    outcome: str | None = Field(default=None, max_length=16)  # founded | partly_founded | unfounded
    answer: str | None = Field(default=None, max_length=4000)
    answered_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    answered_by: str | None = Field(default=None, max_length=64)
    version: int = 1
    updated_at: datetime = Field(sa_column=_at())


class PiiAccess(MonitoringModel, PiiAccessRecord, table=True):
    """The audit of every unmasked read of a complainant's name or phone (shared/pii_audit.py)."""

    __tablename__ = "pii_access"
