"""registry's tables, in its own metadata."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, BigInteger, Boolean, Column, Date, DateTime, Index, UniqueConstraint, false
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from shared.events.tables import inbox_table, outbox_table
from shared.idempotency import idempotency_table


class RegistryModel(SQLModel, registry=registry()):
    pass


metadata = RegistryModel.metadata
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
idempotency = idempotency_table(metadata)


def _at(nullable: bool = False) -> Column:
    return Column(DateTime(timezone=True), nullable=nullable)


class District(RegistryModel, table=True):
    code: str = Field(primary_key=True, max_length=6)
    name: str = Field(max_length=32)
    pinyin: str = Field(max_length=64)
    is_central_city: bool
    population_2020: int | None = None
    population_2020_age0: int | None = None
    population_2020_age1_4: int | None = None


class Town(RegistryModel, table=True):
    """A 街镇 (street / town / township) or an `other` unit such as a development zone."""

    code: str = Field(primary_key=True, max_length=9)
    district_code: str = Field(foreign_key="district.code", index=True, max_length=6)
    name: str = Field(max_length=64)
    town_type: str = Field(max_length=16)  # street | town | township | other
    code_source: str = Field(max_length=16)
    mca2025_code: str | None = Field(default=None, max_length=9)
    name_variant: str | None = Field(default=None, max_length=64)


class Facility(RegistryModel, table=True):
    __table_args__ = (
        Index("ix_facility_district_status", "district_code", "status"),
        Index("ix_facility_lat_lon", "lat", "lon"),
        Index("ix_facility_status_kind", "status", "kind"),
    )

    id: str = Field(primary_key=True, max_length=36)
    name: str = Field(max_length=200)
    kind: str = Field(max_length=32)
    inclusive: bool
    has_nursery_class: bool
    town_code: str = Field(foreign_key="town.code", index=True, max_length=9)
    district_code: str = Field(foreign_key="district.code", max_length=6)
    address: str = Field(max_length=300)
    lat: float
    lon: float
    operator_name: str = Field(max_length=200)
    service_modes: list[str] = Field(sa_column=Column(JSON, nullable=False))
    opening_hours: list[dict[str, object]] = Field(sa_column=Column(JSON, nullable=False))
    classes_infant: int = 0
    classes_toddler: int = 0
    classes_preschool: int = 0
    capacity_infant: int
    capacity_toddler: int
    capacity_preschool: int
    # The latest monthly enrolment, kept on the row so that "free places" is one indexed filter.
    enrolled_infant: int = 0
    enrolled_toddler: int = 0
    enrolled_preschool: int = 0
    enrolment_month: str | None = Field(default=None, max_length=7)
    status: str = Field(max_length=16, index=True)
    license_no: str | None = Field(default=None, max_length=32, unique=True)
    rejection_reasons: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    grade: str | None = Field(default=None, max_length=8)  # the latest commissioned assessment's
    is_demonstration: bool = False
    owner_client_id: str | None = Field(default=None, max_length=64, index=True)
    version: int = 1
    submitted_at: datetime = Field(sa_column=_at())
    approved_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    updated_at: datetime = Field(sa_column=_at())
    # The latest fee schedule disclosed (收费公示), as the public pages show it (service/fees.py).
    fees: dict[str, object] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # An inclusive facility whose fees went above its district's cap and are not yet settled by EDU:
    # flagged to the district, and not counted as inclusive by coverage.
    fee_cap_flagged: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default=false())
    )
    # Stamped by a database trigger on every insert and update (directory_revision): what the
    # in-memory directory of each replica reloads. Never set by the code.
    change_revision: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default="0", index=True)
    )


class DirectoryRevision(RegistryModel, table=True):
    """One row: the last revision stamped on a facility (see Facility.change_revision)."""

    __tablename__ = "directory_revision"

    id: int = Field(primary_key=True)
    revision: int = Field(sa_column=Column(BigInteger, nullable=False))


class FacilityReview(RegistryModel, table=True):
    """One department's decision on an application. A department that reviews again adds a row: its
    latest counts, the earlier ones stay as history."""

    __tablename__ = "facility_review"

    id: str = Field(primary_key=True, max_length=36)
    facility_id: str = Field(foreign_key="facility.id", index=True, max_length=36)
    department: str = Field(max_length=16)
    decision: str = Field(max_length=16)
    note: str = Field(default="", max_length=2000)
    reviewer_client_id: str = Field(max_length=64)
    reviewed_at: datetime = Field(sa_column=_at())


class FacilityStatusChange(RegistryModel, table=True):
    __tablename__ = "facility_status_change"

    id: str = Field(primary_key=True, max_length=36)
    facility_id: str = Field(foreign_key="facility.id", index=True, max_length=36)
    from_status: str | None = Field(default=None, max_length=16)
    to_status: str = Field(max_length=16)
    reason: str = Field(max_length=2000)
    changed_by: str = Field(max_length=64)
    changed_at: datetime = Field(sa_column=_at())


class FacilityVersion(RegistryModel, table=True):
    """The facility as it was after each edit: who changed what, and when."""

    __tablename__ = "facility_version"

    facility_id: str = Field(foreign_key="facility.id", primary_key=True, max_length=36)
    version: int = Field(primary_key=True)
    snapshot: dict[str, object] = Field(sa_column=Column(JSON, nullable=False))
    changed_by: str = Field(max_length=64)
    changed_at: datetime = Field(sa_column=_at())


class Enrolment(RegistryModel, table=True):
    facility_id: str = Field(foreign_key="facility.id", primary_key=True, max_length=36)
    month: str = Field(primary_key=True, max_length=7)  # YYYY-MM
    infant: int
    toddler: int
    preschool: int
    reported_by: str = Field(max_length=64)
    reported_at: datetime = Field(sa_column=_at())


class LicenseSequence(RegistryModel, table=True):
    __tablename__ = "license_sequence"

    district_code: str = Field(primary_key=True, max_length=6)
    year: int = Field(primary_key=True)
    last_number: int = 0


class Assessment(RegistryModel, table=True):
    id: str = Field(primary_key=True, max_length=36)
    facility_id: str = Field(foreign_key="facility.id", index=True, max_length=36)
    method: str = Field(max_length=16)  # self | peer | commissioned
    scores: dict[str, float] = Field(sa_column=Column(JSON, nullable=False))
    grade: str = Field(max_length=8)
    assessed_on: date = Field(sa_column=Column(Date, nullable=False))
    assessor: str = Field(max_length=200)
    recorded_by: str = Field(max_length=64)
    recorded_at: datetime = Field(sa_column=_at())
    # The quality framework version in force when it was recorded, and a grade per dimension of it
    # (assessments recorded before frameworks existed have neither).
    framework_version: int | None = Field(default=None, foreign_key="quality_framework.version")
    dimension_grades: dict[str, str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))


class QualityFramework(RegistryModel, table=True):
    """One version of the quality assessment's dimensions and items (托育机构质量评估标准): a new
    version for every change, never an old one rewritten, so each assessment keeps the version it used."""

    __tablename__ = "quality_framework"

    version: int = Field(primary_key=True)
    title: str = Field(max_length=200)
    source: str = Field(max_length=300)
    dimensions: list[dict[str, object]] = Field(sa_column=Column(JSON, nullable=False))
    published_by: str = Field(max_length=64)
    published_at: datetime = Field(sa_column=_at())


class EntryHealthCheck(RegistryModel, table=True):
    """入托体检: per facility and month, children enrolled and those with a completed entry health check."""

    __tablename__ = "entry_health_check"

    facility_id: str = Field(foreign_key="facility.id", primary_key=True, max_length=36)
    month: str = Field(primary_key=True, max_length=7)  # YYYY-MM
    district_code: str = Field(max_length=6, index=True)
    children_enrolled: int
    children_checked: int
    reported_by: str = Field(max_length=64)
    reported_at: datetime = Field(sa_column=_at())


class HealthAssessment(RegistryModel, table=True):
    """HEALTH's yearly 卫生保健 assessment of a facility. A second one for the same year is another row:
    the earlier stays on record, the latest recorded is the year's result."""

    __tablename__ = "health_assessment"
    __table_args__ = (Index("ix_health_assessment_facility_year", "facility_id", "year", "recorded_at"),)

    id: str = Field(primary_key=True, max_length=36)
    facility_id: str = Field(foreign_key="facility.id", max_length=36)
    district_code: str = Field(max_length=6, index=True)
    year: int
    result: str = Field(max_length=24)  # qualified | basically_qualified | unqualified
    assessed_on: date = Field(sa_column=Column(Date, nullable=False))
    notes: str = Field(default="", max_length=2000)
    recorded_by: str = Field(max_length=64)
    recorded_at: datetime = Field(sa_column=_at())


class CreditEntry(RegistryModel, table=True):
    """诚信记录: a dated public entry. Automatic ones name the event they came from, once."""

    __tablename__ = "credit_entry"
    __table_args__ = (UniqueConstraint("facility_id", "source_event_id", name="uq_credit_source_event"),)

    id: str = Field(primary_key=True, max_length=36)
    facility_id: str = Field(foreign_key="facility.id", index=True, max_length=36)
    polarity: str = Field(max_length=8)  # positive | negative
    category: str = Field(max_length=32)
    title: str = Field(max_length=200)
    detail: str = Field(default="", max_length=2000)
    occurred_on: date = Field(sa_column=Column(Date, nullable=False))
    source_event_id: str | None = Field(default=None, max_length=64)
    source_event_type: str | None = Field(default=None, max_length=128)
    written_by: str = Field(max_length=64)
    recorded_at: datetime = Field(sa_column=_at())


class InspectionRecord(RegistryModel, table=True):
    """The public inspection history, built from the monitoring service's events."""

    __tablename__ = "inspection_record"

    inspection_id: str = Field(primary_key=True, max_length=36)
    facility_id: str = Field(foreign_key="facility.id", index=True, max_length=36)
    inspected_on: date = Field(sa_column=Column(Date, nullable=False))
    outcome: str = Field(max_length=16)
    failed_items: list[dict[str, object]] = Field(sa_column=Column(JSON, nullable=False))
    rectify_by: date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    rectified_on: date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    received_at: datetime = Field(sa_column=_at())


class ChangeRequest(RegistryModel, table=True):
    """A change to a licensed facility's licensed facts (`facts`), or a fee schedule above the cap
    or while the facility is flagged (`fees`): applied only once every department in `departments`
    approved; any rejection closes it."""

    __tablename__ = "change_request"
    __table_args__ = (Index("ix_change_request_facility_status", "facility_id", "status"),)

    id: str = Field(primary_key=True, max_length=36)
    facility_id: str = Field(foreign_key="facility.id", max_length=36)
    kind: str = Field(max_length=16)  # facts | fees
    changes: dict[str, object] = Field(sa_column=Column(JSON, nullable=False))
    fee_schedule_id: str | None = Field(default=None, max_length=36)
    departments: list[str] = Field(sa_column=Column(JSON, nullable=False))
    status: str = Field(max_length=16)  # pending | approved | rejected | superseded
    reason: str = Field(default="", max_length=2000)
    requested_by: str = Field(max_length=64)
    requested_at: datetime = Field(sa_column=_at())
    decided_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))


class ChangeRequestReview(RegistryModel, table=True):
    """A department's decision on a change request; a later one by the same department adds a row."""

    __tablename__ = "change_request_review"

    id: str = Field(primary_key=True, max_length=36)
    change_request_id: str = Field(foreign_key="change_request.id", index=True, max_length=36)
    department: str = Field(max_length=16)
    decision: str = Field(max_length=16)
    note: str = Field(default="", max_length=2000)
    reviewer_client_id: str = Field(max_length=64)
    reviewed_at: datetime = Field(sa_column=_at())


class FeeSchedule(RegistryModel, table=True):
    """One version of a facility's fees (收费). Amounts in fen (分). Never overwritten: a new
    schedule is a new row; `published` ones are in force from `effective_from`."""

    __tablename__ = "fee_schedule"
    __table_args__ = (UniqueConstraint("facility_id", "version", name="uq_fee_schedule_version"),)

    id: str = Field(primary_key=True, max_length=36)
    facility_id: str = Field(foreign_key="facility.id", index=True, max_length=36)
    version: int
    effective_from: date = Field(sa_column=Column(Date, nullable=False))
    # [{age_class, service_mode, amount_fen}]: monthly for full_day and half_day, per hour for hourly
    fees: list[dict[str, object]] = Field(sa_column=Column(JSON, nullable=False))
    meals_fen_per_month: int | None = None
    other_charges: list[dict[str, object]] = Field(sa_column=Column(JSON, nullable=False))
    status: str = Field(max_length=16)  # published | pending | rejected | superseded
    max_full_day_fen: int | None = None
    cap_fen: int | None = None  # the district's cap for the effective year, when one is set
    recorded_by: str = Field(max_length=64)
    recorded_at: datetime = Field(sa_column=_at())
    published_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))


# --- Subsidies (综合奖补): rates, every enrolment filing, monthly lists and their lines -------------


class EnrolmentFiling(RegistryModel, table=True):
    """Every enrolment report as filed, never overwritten (the `enrolment` row keeps only the latest):
    what a month's subsidy reads as recorded at the month's close."""

    __tablename__ = "enrolment_filing"
    __table_args__ = (Index("ix_enrolment_filing_lookup", "facility_id", "month", "reported_at"),)

    id: str = Field(primary_key=True, max_length=36)
    facility_id: str = Field(foreign_key="facility.id", max_length=36)
    month: str = Field(max_length=7)  # YYYY-MM
    infant: int
    toddler: int
    preschool: int
    reported_by: str = Field(max_length=64)
    reported_at: datetime = Field(sa_column=_at())


class SubsidyRate(RegistryModel, table=True):
    """FINANCE's amount per inclusive place per month for a district and year, in fen. Each setting
    is a new row: the rate in force at an instant is the latest set before it."""

    __tablename__ = "subsidy_rate"
    __table_args__ = (Index("ix_subsidy_rate_lookup", "district_code", "year", "set_at"),)

    id: str = Field(primary_key=True, max_length=36)
    district_code: str = Field(foreign_key="district.code", max_length=6)
    year: int
    amount_fen: int = Field(sa_column=Column(BigInteger, nullable=False))
    note: str = Field(default="", max_length=2000)
    set_by: str = Field(max_length=64)
    set_at: datetime = Field(sa_column=_at())


class SubsidyList(RegistryModel, table=True):
    """A district's list for a month: draft → approved or returned (EDU) → published (FINANCE)."""

    __tablename__ = "subsidy_list"
    __table_args__ = (UniqueConstraint("month", "district_code", name="uq_subsidy_list_month_district"),)

    id: str = Field(primary_key=True, max_length=36)
    month: str = Field(max_length=7)
    district_code: str = Field(foreign_key="district.code", index=True, max_length=6)
    status: str = Field(max_length=16)  # draft | returned | approved | published
    closes_at: datetime = Field(sa_column=_at())
    rate_fen: int = Field(sa_column=Column(BigInteger, nullable=False))
    line_count: int = 0
    eligible_lines: int = 0
    places: int = 0
    total_fen: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    computed_by: str = Field(max_length=64)
    computed_at: datetime = Field(sa_column=_at())
    reviewed_by: str | None = Field(default=None, max_length=64)
    reviewed_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    review_note: str = Field(default="", max_length=2000)
    published_by: str | None = Field(default=None, max_length=64)
    published_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    version: int = 1


class SubsidyLine(RegistryModel, table=True):
    """One facility's entitlement for the list's month, or an adjustment of an earlier published
    month's (`for_month`): the difference between what that month is now owed, as recorded at this
    list's close, and what the published lists already gave."""

    __tablename__ = "subsidy_line"
    __table_args__ = (
        UniqueConstraint("list_id", "facility_id", "for_month", name="uq_subsidy_line"),
        Index("ix_subsidy_line_facility", "facility_id", "for_month"),
    )

    id: str = Field(primary_key=True, max_length=36)
    list_id: str = Field(foreign_key="subsidy_list.id", index=True, max_length=36)
    facility_id: str = Field(foreign_key="facility.id", max_length=36)
    facility_name: str = Field(max_length=200)
    kind: str = Field(max_length=16)  # entitlement | adjustment
    for_month: str = Field(max_length=7)
    eligible: bool
    places: int
    rate_fen: int = Field(sa_column=Column(BigInteger, nullable=False))
    amount_fen: int = Field(sa_column=Column(BigInteger, nullable=False))
    checks: list[dict[str, object]] = Field(sa_column=Column(JSON, nullable=False))
    refusals: list[str] = Field(sa_column=Column(JSON, nullable=False))
    paid_fen: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    paid_on: date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    payment_reference: str | None = Field(default=None, max_length=64)
    paid_by: str | None = Field(default=None, max_length=64)
    paid_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
