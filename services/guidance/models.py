"""guidance's tables, in its own metadata. Guardians' phone numbers are stored encrypted
(`phone_encrypted` with its `phone_key_id`), found by keyed hash (`phone_hash`) and shown masked
(`phone_masked`); a family's link code is kept only as a keyed hash."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, BigInteger, CheckConstraint, Column, Date, DateTime, Index, UniqueConstraint
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from shared.events.tables import inbox_table, outbox_table
from shared.idempotency import idempotency_table
from shared.pii_audit import PiiAccessRecord


class GuidanceModel(SQLModel, registry=registry()):
    pass


metadata = GuidanceModel.metadata
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
idempotency = idempotency_table(metadata)


def _at(*, nullable: bool = False, index: bool = False) -> Column[datetime]:
    return Column(DateTime(timezone=True), nullable=nullable, index=index)


def _on(*, nullable: bool = False) -> Column[date]:
    return Column(Date, nullable=nullable)


class District(GuidanceModel, table=True):
    """Guidance's own copy of Shanghai's districts (shared/data), loaded by its migration."""

    code: str = Field(primary_key=True, max_length=6)
    name: str = Field(max_length=32)
    is_central_city: bool


class Town(GuidanceModel, table=True):
    """A 街镇 (street / town / township) or an `other` unit, which is not in the denominators."""

    code: str = Field(primary_key=True, max_length=9)
    district_code: str = Field(foreign_key="district.code", index=True, max_length=6)
    name: str = Field(max_length=64)
    town_type: str = Field(max_length=16)


class Place(GuidanceModel, table=True):
    """A guidance station (one per 街镇 is the target), an early-development base, a child-friendly
    community site, a play-observation room or a parent-child room. `opened_on` is the day it opened
    or was designated, so the figures can be asked for any year."""

    __table_args__ = (
        Index("ix_place_kind_district", "kind", "district_code", "opened_on"),
        Index("ix_place_town", "town_code", "kind"),
    )

    id: str = Field(primary_key=True, max_length=36)
    kind: str = Field(max_length=32)
    name: str = Field(max_length=200)
    district_code: str = Field(foreign_key="district.code", max_length=6)
    town_code: str | None = Field(default=None, foreign_key="town.code", max_length=9)
    address: str = Field(default="", max_length=300)
    opened_on: date = Field(sa_column=_on())
    closed_on: date | None = Field(default=None, sa_column=_on(nullable=True))
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(sa_column=_at())
    updated_at: datetime = Field(sa_column=_at())
    version: int = 1


class Family(GuidanceModel, table=True):
    __table_args__ = (
        Index("ix_family_district_town", "district_code", "town_code"),
        # The figures' GROUP BYs read these indexes alone (covering), never the table.
        Index("ix_family_need", "in_need", "registered_on", "district_code", "id"),
        Index("ix_family_newborn", "newborn", "in_need", "registered_on", "district_code", "id"),
        Index("ix_family_registered", "district_code", "registered_on", "has_handbook", "in_need"),
    )

    id: str = Field(primary_key=True, max_length=36)
    district_code: str = Field(foreign_key="district.code", max_length=6)
    town_code: str = Field(foreign_key="town.code", max_length=9)
    in_need: bool  # 有需求的家庭: a family the guidance stations follow
    newborn: bool
    grandparent_carers: bool  # 隔代养育: grandparents look after the children
    has_handbook: bool  # 母子健康手册 (T19)
    registered_on: date = Field(sa_column=_on())  # Shanghai date, for per-year figures
    registered_at: datetime = Field(sa_column=_at())
    registered_by: str = Field(max_length=64)
    registered_via: str = Field(max_length=16)  # station | app
    # HMAC of the one-time code a parent redeems to link its app account; cleared once used.
    link_code_hash: str | None = Field(default=None, max_length=64, unique=True)
    link_code_expires_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    version: int = 1
    updated_at: datetime = Field(sa_column=_at())


class Guardian(GuidanceModel, table=True):
    id: str = Field(primary_key=True, max_length=36)
    family_id: str = Field(foreign_key="family.id", index=True, max_length=36)
    position: int = 0
    relation: str = Field(max_length=16)  # mother | father | grandmother | grandfather | other
    name: str | None = Field(default=None, max_length=64)
    phone_key_id: str | None = Field(default=None, max_length=32)
    phone_encrypted: str | None = Field(default=None, max_length=200)
    phone_masked: str | None = Field(default=None, max_length=16)
    phone_hash: str | None = Field(default=None, max_length=64, index=True)


class Child(GuidanceModel, table=True):
    """Only what the guidance needs: the birth date, for the child's age."""

    __table_args__ = (Index("ix_child_birth_family", "birth_date", "family_id"),)

    id: str = Field(primary_key=True, max_length=36)
    family_id: str = Field(foreign_key="family.id", index=True, max_length=36)
    birth_date: date = Field(sa_column=_on())


class FamilyLink(GuidanceModel, table=True):
    """Which parent app account belongs to which family: guidance owns the link, the token's
    self-declared `family_id` is never trusted."""

    __tablename__ = "family_link"

    parent_id: str = Field(primary_key=True, max_length=64)
    family_id: str = Field(foreign_key="family.id", index=True, max_length=36)
    linked_via: str = Field(max_length=16)  # registration | code
    linked_at: datetime = Field(sa_column=_at())


class LinkAttempt(GuidanceModel, table=True):
    """Wrong link codes per parent, so guessing is slowed down (429) on top of the code's entropy."""

    __tablename__ = "link_attempt"
    __table_args__ = (Index("ix_link_attempt_parent", "parent_id", "attempted_at"),)

    id: str = Field(primary_key=True, max_length=36)
    parent_id: str = Field(max_length=64)
    attempted_at: datetime = Field(sa_column=_at())


class HomeVisit(GuidanceModel, table=True):
    """上门指导."""

    __tablename__ = "home_visit"
    __table_args__ = (
        Index("ix_home_visit_family", "family_id", "visited_on"),
        Index("ix_home_visit_district", "district_code", "visited_on"),
    )

    id: str = Field(primary_key=True, max_length=36)
    family_id: str = Field(foreign_key="family.id", max_length=36)
    district_code: str = Field(max_length=6)
    visited_on: date = Field(sa_column=_on())
    visitor: str = Field(max_length=100)
    topics: list[str] = Field(sa_column=Column(JSON, nullable=False))
    notes: str = Field(default="", max_length=2000)
    recorded_by: str = Field(max_length=64)
    recorded_at: datetime = Field(sa_column=_at())


class GuidanceSession(GuidanceModel, table=True):
    """An offline session or event (育儿加油站, 亲子嘉年华, courses …) at city, district or station
    level. `booked` is only ever raised by a conditional UPDATE, so it never passes `capacity`."""

    __tablename__ = "guidance_session"
    __table_args__ = (
        Index("ix_session_starts", "starts_at"),
        Index("ix_session_level_kind", "level", "kind", "starts_at"),
        Index("ix_session_district", "district_code", "starts_at"),
        CheckConstraint("booked >= 0 AND booked <= capacity", name="ck_session_booked_within_capacity"),
    )

    id: str = Field(primary_key=True, max_length=36)
    level: str = Field(max_length=16)  # city | district | station
    kind: str = Field(max_length=32)
    title: str = Field(max_length=200)
    description: str = Field(default="", max_length=2000)
    starts_at: datetime = Field(sa_column=_at())
    ends_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    place_id: str | None = Field(default=None, foreign_key="place.id", index=True, max_length=36)
    district_code: str | None = Field(default=None, foreign_key="district.code", max_length=6)
    town_code: str | None = Field(default=None, foreign_key="town.code", max_length=9)
    venue: str = Field(default="", max_length=300)
    capacity: int
    booked: int = 0
    status: str = Field(default="scheduled", max_length=16)  # scheduled | cancelled
    organiser_client_id: str = Field(max_length=64)
    created_at: datetime = Field(sa_column=_at())
    version: int = 1


class Booking(GuidanceModel, table=True):
    __table_args__ = (
        UniqueConstraint("session_id", "family_id", name="uq_booking_session_family"),
        # "Sessions a family attended in a year" is one covering range per family.
        Index("ix_booking_family", "family_id", "attended", "session_starts_at"),
    )

    id: str = Field(primary_key=True, max_length=36)
    session_id: str = Field(foreign_key="guidance_session.id", max_length=36)
    family_id: str = Field(foreign_key="family.id", max_length=36)
    status: str = Field(max_length=16)  # booked | cancelled
    booked_by: str = Field(max_length=64)
    booked_at: datetime = Field(sa_column=_at())
    cancelled_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    attended: bool = False
    attended_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    # The session's start, copied (sessions are not rescheduled), so the figures need no join.
    session_starts_at: datetime = Field(sa_column=_at())


class Resource(GuidanceModel, table=True):
    """An article, video, course or resource package for an age range in months (T17, T24)."""

    __table_args__ = (
        Index("ix_resource_published", "published_at"),
        Index("ix_resource_age", "age_from_months", "age_to_months"),
    )

    id: str = Field(primary_key=True, max_length=36)
    kind: str = Field(max_length=16)
    title: str = Field(max_length=200)
    summary: str = Field(default="", max_length=2000)
    url: str | None = Field(default=None, max_length=500)
    age_from_months: int
    age_to_months: int
    topics: list[str] = Field(sa_column=Column(JSON, nullable=False))
    audience: str = Field(max_length=16)  # parents | grandparents | facilities
    published_at: datetime = Field(sa_column=_at())
    published_by: str = Field(max_length=64)
    pushed_families: int = 0
    version: int = 1


class ResourcePush(GuidanceModel, table=True):
    """精准推送: which families a resource was pushed to, written set-based when it is published."""

    __tablename__ = "resource_push"
    __table_args__ = (Index("ix_resource_push_family", "family_id", "pushed_at"),)

    resource_id: str = Field(foreign_key="resource.id", primary_key=True, max_length=36)
    family_id: str = Field(foreign_key="family.id", primary_key=True, max_length=36)
    pushed_at: datetime = Field(sa_column=_at())


class FamilyYear(GuidanceModel, table=True):
    """A family's tallies for a (UTC) year: sessions attended (bookings marked attended, whatever
    their status) and whether any resource was pushed to it, kept in the transaction that records
    the fact, so the figures read one small covering range instead of a subquery per family in need.
    The family's district and registration day (which never change) and its `in_need` flag (kept in
    step by the family's edit) are copied, so that range needs no join."""

    __tablename__ = "family_year"
    __table_args__ = (
        Index(
            "ix_family_year_figures",
            "year",
            "in_need",
            "district_code",
            "registered_on",
            "sessions_attended",
            "pushed",
        ),
    )

    family_id: str = Field(foreign_key="family.id", primary_key=True, max_length=36)
    year: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    district_code: str = Field(max_length=6)
    registered_on: date = Field(sa_column=_on())
    in_need: bool
    sessions_attended: int = 0
    pushed: bool = False


class FamilyTally(GuidanceModel, table=True):
    """Families per district and registration year: all, with a handbook, in need. Kept by triggers
    (migration guidance_0004) in the transaction of every change to `family`, whoever writes it;
    the figures sum the years up to theirs."""

    __tablename__ = "family_tally"

    district_code: str = Field(primary_key=True, max_length=6)
    registered_year: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    families: int = Field(sa_type=BigInteger)
    with_handbook: int = Field(sa_type=BigInteger)
    in_need: int = Field(sa_type=BigInteger)
    # Newborn families in need, and those with a home visit on or after January 1 of the registration
    # year (guidance_0006: triggers on `family` and `home_visit`).
    newborn_in_need: int = Field(default=0, sa_type=BigInteger)
    newborn_in_need_visited: int = Field(default=0, sa_type=BigInteger)


FAMILY_YEAR_SESSIONS_CAP = 64  # the histogram's last bucket: this many sessions or more


class FamilyYearTally(GuidanceModel, table=True):
    """The families' yearly tallies (`family_year`) in need whose family registered by the year's end,
    counted per year, district, `pushed` and sessions attended (capped at FAMILY_YEAR_SESSIONS_CAP, so
    any offline target up to it is a sum over a few hundred rows). Kept by triggers (migration
    guidance_0006) in the transaction of every change to `family_year`."""

    __tablename__ = "family_year_tally"

    year: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    district_code: str = Field(primary_key=True, max_length=6)
    pushed: bool = Field(primary_key=True)
    sessions_attended: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    families: int = Field(sa_type=BigInteger)


class DistrictBirths(GuidanceModel, table=True):
    """Births per district and year: the denominator of the handbook's coverage (T19). HEALTH keeps it
    current through the API; the migration seeds 2020 with the census's age-0 population."""

    __tablename__ = "district_births"

    district_code: str = Field(foreign_key="district.code", primary_key=True, max_length=6)
    year: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    births: int
    source: str = Field(max_length=200)
    recorded_by: str = Field(max_length=64)
    recorded_at: datetime = Field(sa_column=_at())


class PiiAccess(GuidanceModel, PiiAccessRecord, table=True):
    """The audit of every unmasked read of personal data (shared/pii_audit.py)."""

    __tablename__ = "pii_access"
