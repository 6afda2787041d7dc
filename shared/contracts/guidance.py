"""Events the guidance service publishes. None carries personal data: no phone numbers, no names of
guardians, no birth dates; families are named by their id, children only counted."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from shared.contracts.types import ClientId, Code, Count, DistrictCode, Name, TownCode, Uuid
from shared.events.envelope import DomainEvent

SessionLevel = Literal["city", "district", "station"]
# A push to 45,000 families is 45 events: each stays small, and stored with one audience row per family.
PUSHED_FAMILIES_PER_EVENT = 1000


class PlaceOpened(DomainEvent):
    event_type: ClassVar[str] = "cradle.guidance.place.opened"

    place_id: Uuid
    kind: Literal[
        "guidance_station", "development_base", "child_friendly_site", "observation_room", "parent_child_room"
    ]
    name: Name
    district_code: DistrictCode
    town_code: TownCode | None = None
    opened_on: date

    def subject_id(self) -> str:
        return self.place_id


class FamilyLinked(DomainEvent):
    """A parent's app account belongs to a family now (registered from the app, or a station's link
    code redeemed): what lets a parent read its family's events elsewhere. Both ids are opaque."""

    event_type: ClassVar[str] = "cradle.guidance.family.linked"

    family_id: Uuid
    parent_id: ClientId  # the parent's account (the client id of its tokens)
    linked_via: Literal["registration", "code"]
    linked_at: datetime

    def subject_id(self) -> str:
        return self.family_id


class FamilyRegistered(DomainEvent):
    event_type: ClassVar[str] = "cradle.guidance.family.registered"

    family_id: Uuid
    district_code: DistrictCode
    town_code: TownCode
    in_need: bool
    newborn: bool
    grandparent_carers: bool
    has_handbook: bool
    children: Count
    registered_via: Literal["station", "app"]
    registered_at: datetime

    def subject_id(self) -> str:
        return self.family_id


class VisitRecorded(DomainEvent):
    event_type: ClassVar[str] = "cradle.guidance.visit.recorded"

    visit_id: Uuid
    family_id: Uuid
    district_code: DistrictCode
    visited_on: date
    topics: list[Code]
    newborn_family: bool
    in_need_family: bool

    def subject_id(self) -> str:
        return self.visit_id


class SessionScheduled(DomainEvent):
    event_type: ClassVar[str] = "cradle.guidance.session.scheduled"

    session_id: Uuid
    level: SessionLevel
    kind: Code
    title: Name
    starts_at: datetime
    ends_at: datetime | None = None
    place_id: Uuid | None = None
    district_code: DistrictCode | None = None
    town_code: TownCode | None = None
    capacity: Count

    def subject_id(self) -> str:
        return self.session_id


class SessionBooked(DomainEvent):
    event_type: ClassVar[str] = "cradle.guidance.session.booked"

    session_id: Uuid
    booking_id: Uuid
    family_id: Uuid
    booked: Count  # places taken now
    capacity: Count
    booked_at: datetime

    def subject_id(self) -> str:
        return self.session_id


class BookingCancelled(DomainEvent):
    event_type: ClassVar[str] = "cradle.guidance.booking.cancelled"

    session_id: Uuid
    booking_id: Uuid
    family_id: Uuid
    booked: Count
    capacity: Count
    cancelled_at: datetime

    def subject_id(self) -> str:
        return self.session_id


class SessionAttended(DomainEvent):
    event_type: ClassVar[str] = "cradle.guidance.session.attended"

    session_id: Uuid
    family_id: Uuid
    level: SessionLevel
    kind: Code
    district_code: DistrictCode | None = None
    starts_at: datetime
    attended: bool  # false when an organiser corrects an earlier record

    def subject_id(self) -> str:
        return self.session_id


class ResourcePublished(DomainEvent):
    event_type: ClassVar[str] = "cradle.guidance.resource.published"

    resource_id: Uuid
    title: Name
    kind: Code
    age_from_months: Count
    age_to_months: Count
    audience: Literal["parents", "grandparents", "facilities"]
    topics: list[Code]
    pushed_families: Count  # how many families in need it was pushed to
    published_at: datetime

    def subject_id(self) -> str:
        return self.resource_id


class ResourcePushed(DomainEvent):
    """A published resource was pushed (精准推送) to these families: one event per at most
    PUSHED_FAMILIES_PER_EVENT of them, so each family's parents can be told."""

    event_type: ClassVar[str] = "cradle.guidance.resource.pushed"

    resource_id: Uuid
    title: Name
    kind: Code
    family_ids: Annotated[list[Uuid], Field(max_length=PUSHED_FAMILIES_PER_EVENT)]
    families: Count  # how many this event names (still told when a reader's copy omits the ids)
    pushed_at: datetime

    def subject_id(self) -> str:
        return self.resource_id


class BirthsRecorded(DomainEvent):
    """HEALTH recorded (or corrected) a district's births for a year: the handbook coverage's denominator."""

    event_type: ClassVar[str] = "cradle.guidance.births.recorded"

    district_code: DistrictCode
    year: Annotated[int, Field(ge=2000, le=2100)]
    births: Count
    recorded_at: datetime

    def subject_id(self) -> str:
        return self.district_code


EVENTS: tuple[type[DomainEvent], ...] = (
    PlaceOpened,
    FamilyRegistered,
    FamilyLinked,
    VisitRecorded,
    SessionScheduled,
    SessionBooked,
    BookingCancelled,
    SessionAttended,
    ResourcePublished,
    ResourcePushed,
    BirthsRecorded,
)
