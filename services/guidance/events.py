"""Events the guidance service publishes (contracts in docs/EVENTS.md). None carries personal data:
no phone numbers, no names of guardians, no birth dates; families are named by their id."""

from __future__ import annotations

from datetime import date, datetime
from typing import ClassVar

from shared.events.envelope import DomainEvent


class PlaceOpened(DomainEvent):
    event_type: ClassVar[str] = "cradle.guidance.place.opened"

    place_id: str
    kind: str
    name: str
    district_code: str
    town_code: str | None
    opened_on: date

    def subject_id(self) -> str:
        return self.place_id


class FamilyRegistered(DomainEvent):
    event_type: ClassVar[str] = "cradle.guidance.family.registered"

    family_id: str
    district_code: str
    town_code: str
    in_need: bool
    newborn: bool
    grandparent_carers: bool
    has_handbook: bool
    children: int
    registered_via: str  # station | app
    registered_at: datetime

    def subject_id(self) -> str:
        return self.family_id


class VisitRecorded(DomainEvent):
    event_type: ClassVar[str] = "cradle.guidance.visit.recorded"

    visit_id: str
    family_id: str
    district_code: str
    visited_on: date
    topics: list[str]
    newborn_family: bool
    in_need_family: bool

    def subject_id(self) -> str:
        return self.visit_id


class SessionScheduled(DomainEvent):
    event_type: ClassVar[str] = "cradle.guidance.session.scheduled"

    session_id: str
    level: str
    kind: str
    title: str
    starts_at: datetime
    ends_at: datetime | None
    place_id: str | None
    district_code: str | None
    town_code: str | None
    capacity: int

    def subject_id(self) -> str:
        return self.session_id


class SessionBooked(DomainEvent):
    event_type: ClassVar[str] = "cradle.guidance.session.booked"

    session_id: str
    booking_id: str
    family_id: str
    booked: int
    capacity: int
    booked_at: datetime

    def subject_id(self) -> str:
        return self.session_id


class BookingCancelled(DomainEvent):
    event_type: ClassVar[str] = "cradle.guidance.booking.cancelled"

    session_id: str
    booking_id: str
    family_id: str
    booked: int
    capacity: int
    cancelled_at: datetime

    def subject_id(self) -> str:
        return self.session_id


class SessionAttended(DomainEvent):
    event_type: ClassVar[str] = "cradle.guidance.session.attended"

    session_id: str
    family_id: str
    level: str
    kind: str
    district_code: str | None
    starts_at: datetime
    attended: bool  # false when an organiser corrects an earlier record

    def subject_id(self) -> str:
        return self.session_id


class ResourcePublished(DomainEvent):
    event_type: ClassVar[str] = "cradle.guidance.resource.published"

    resource_id: str
    title: str
    kind: str
    age_from_months: int
    age_to_months: int
    audience: str
    topics: list[str]
    pushed_families: int
    published_at: datetime

    def subject_id(self) -> str:
        return self.resource_id
