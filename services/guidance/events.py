"""Events the guidance service publishes. Their payload models live in
shared/contracts/guidance.py, one definition for this producer and every consumer (docs/EVENTS.md)."""

from __future__ import annotations

from shared.contracts.guidance import (
    BirthsRecorded,
    BookingCancelled,
    FamilyLinked,
    FamilyRegistered,
    PlaceOpened,
    ResourcePublished,
    ResourcePushed,
    SessionAttended,
    SessionBooked,
    SessionScheduled,
    VisitRecorded,
)

__all__ = [
    "BirthsRecorded",
    "BookingCancelled",
    "FamilyLinked",
    "FamilyRegistered",
    "PlaceOpened",
    "ResourcePublished",
    "ResourcePushed",
    "SessionAttended",
    "SessionBooked",
    "SessionScheduled",
    "VisitRecorded",
]
