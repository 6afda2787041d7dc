"""Who may see an event: the same line the API draws. A bureau sees what its scopes let it read
city-wide, a district its district's, an operator its own facilities', a parent its own family's
(the family guidance linked its account to); an event about several facilities or families is cut
down, per reader, to those that reader may see. Subscriptions, the feed and the stream all decide
here."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.delivery.models import (
    EVERY_DISTRICT,
    EventAudience,
    EventRecord,
    FacilityProjection,
    ParentLink,
)
from shared.events.envelope import CloudEvent
from shared.identity import ClientKind, Identity

# The kinds that may subscribe and read the feed: those the API shows events' objects to by facility,
# district or city, and parents by family (the feed only: a parent's token holds `parent`, never
# `events:subscribe`, and its family is the one guidance's `family.linked` said, see `linked_reader`).
READER_KINDS = (ClientKind.bureau, ClientKind.district, ClientKind.operator, ClientKind.parent)
PARENT_SCOPE = "parent"
# What a parent reads: the events about its family that carry nothing but that family's own facts.
FAMILY_EVENTS = frozenset({"cradle.guidance.resource.pushed"})

# Events about a practitioner alone (no facility): the city's bureaus read them.
_PRACTITIONER_ONLY = {
    "cradle.workforce.practitioner.registered",
    "cradle.workforce.certificate.added",
    "cradle.workforce.training.recorded",
}
# Bookings and a parent's link name a family but no district: the bureaus'.
_BUREAUS_ONLY = {
    "cradle.guidance.session.booked",
    "cradle.guidance.booking.cancelled",
    "cradle.guidance.family.linked",
}


@dataclass(frozen=True)
class Place:
    """One row of an event's audience."""

    facility_id: str | None = None
    district_code: str | None = None
    owner_client_id: str | None = None
    client_id: str | None = None
    family_id: str | None = None


@dataclass
class ProjectedFacility:
    """A facility projection's row, as a batch of events holds it (service/log.py `FacilityBook`)."""

    facility_id: str
    district_code: str
    owner_client_id: str | None
    version: int
    source_event_at: datetime


# A batch's projections by facility id, None for a facility known to have none.
KnownFacilities = Mapping[str, ProjectedFacility | None]


def scope_of(event_type: str) -> str | None:
    """`cradle.<service>.…` is read with `<service>:read`; the delivery service's own events (about a
    client's subscriptions) only by that client."""
    service = event_type.split(".")[1]
    return None if service == "delivery" else f"{service}:read"


async def places_of(
    session: AsyncSession, event: CloudEvent, known: KnownFacilities | None = None
) -> list[Place]:
    """The facilities, districts or client an event is about, read from its data (and the facility
    projection for a facility named without its district: from `known` when it has the facility)."""
    data: dict[str, Any] = event.data
    known = known or {}
    kind = event.type
    if kind.startswith("cradle.delivery."):
        return [Place(client_id=str(data["client_id"]))]
    if kind in _PRACTITIONER_ONLY or kind in _BUREAUS_ONLY:
        return []
    if kind in FAMILY_EVENTS:  # no district: the families' parents and the bureaus
        return [Place(family_id=str(f)) for f in dict.fromkeys(data.get("family_ids") or [])]
    if kind == "cradle.workforce.ban.issued":
        return [
            await _facility(session, known, str(f["facility_id"]), str(f["district_code"]))
            for f in _dicts(data.get("facilities"))
        ]
    if kind == "cradle.workforce.ban.rescinded":
        return await _places_of_ban(session, str(data["ban_id"]))
    if kind == "cradle.workforce.certificate.expired":
        return [
            await _facility(session, known, str(f), None) for f in data.get("employed_at_facility_ids") or []
        ]
    if kind == "cradle.monitoring.inspection_plan.drawn":
        return [Place(district_code=str(data["district_code"]))]  # a district's plan: not its facilities'
    if data.get("facility_id"):  # a check the annual re-check opens names none: the bureaus'
        district = data.get("district_code")
        return [
            await _facility(session, known, str(data["facility_id"]), str(district) if district else None)
        ]
    if kind.startswith("cradle.guidance."):
        district = data.get("district_code")
        if district:
            return [Place(district_code=str(district))]
        # City-level sessions and resources: every district reads them through the API too.
        return [Place(district_code=EVERY_DISTRICT)]
    if data.get("district_code"):
        return [Place(district_code=str(data["district_code"]))]
    return []


def _dicts(value: object) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


async def _facility(
    session: AsyncSession, known: KnownFacilities, facility_id: str, district_code: str | None
) -> Place:
    projection: FacilityProjection | ProjectedFacility | None
    if facility_id in known:
        projection = known[facility_id]
    else:
        projection = await session.get(FacilityProjection, facility_id)
    if projection is not None:
        return Place(
            facility_id=facility_id,
            district_code=district_code or projection.district_code,
            owner_client_id=projection.owner_client_id,
        )
    return Place(facility_id=facility_id, district_code=district_code)


async def _places_of_ban(session: AsyncSession, ban_id: str) -> list[Place]:
    """A rescission names no facility: it concerns whoever saw the ban."""
    issued = (
        select(EventRecord.seq)
        .where(EventRecord.type == "cradle.workforce.ban.issued", EventRecord.subject == ban_id)
        .scalar_subquery()
    )
    rows = (
        await session.execute(
            select(
                EventAudience.facility_id, EventAudience.district_code, EventAudience.owner_client_id
            ).where(EventAudience.event_seq.in_(issued))
        )
    ).all()
    return [Place(facility_id=f, district_code=d, owner_client_id=o) for f, d, o in rows]


# --- one reader -----------------------------------------------------------------------------------


def reads_events(reader: Identity) -> bool:
    return reader.kind in READER_KINDS


async def linked_reader(session: AsyncSession, reader: Identity) -> Identity:
    """A parent as the feed reads for it: with the family guidance linked its account to
    (`family.linked`; none: it sees nothing), never the `family_id` its token declared."""
    if reader.kind != ClientKind.parent:
        return reader
    family_id = (
        await session.execute(select(ParentLink.family_id).where(ParentLink.parent_id == reader.client_id))
    ).scalar_one_or_none()
    return reader.model_copy(update={"family_id": family_id})


def _sees_place(reader: Identity, place: Place) -> bool:
    if place.client_id is not None:
        return place.client_id == reader.client_id
    if place.family_id is not None:
        # A family's events: its parents, and the city's bureaus (redacted to the counts).
        if reader.kind == ClientKind.parent:
            return reader.family_id is not None and place.family_id == reader.family_id
        return reader.sees_whole_city()
    if reader.kind == ClientKind.parent:
        return False
    if reader.sees_whole_city():
        return True
    if reader.kind == ClientKind.district:
        return reader.district_code is not None and place.district_code in (
            reader.district_code,
            EVERY_DISTRICT,
        )
    if reader.kind == ClientKind.operator:
        return place.facility_id is not None and (
            place.facility_id in reader.facility_ids or place.owner_client_id == reader.client_id
        )
    return False


def may_see(reader: Identity, *, scope: str | None, places: Sequence[Place]) -> bool:
    if not reads_events(reader):
        return False
    if scope is None:  # a client's own subscription events
        return any(p.client_id == reader.client_id for p in places)
    if reader.kind == ClientKind.parent:
        return reader.has_scope(PARENT_SCOPE) and any(_sees_place(reader, p) for p in places)
    if not reader.has_scope(scope):
        return False
    if reader.sees_whole_city():
        return True
    return any(_sees_place(reader, p) for p in places)


def redacted(reader: Identity, event: dict[str, Any], places: Sequence[Place]) -> dict[str, Any]:
    """The event as this reader may see it: lists of facilities cut to the reader's own; a family
    event's families to the parent's own, and to none for everyone else (the bureaus read how many
    families, not which: a push goes to families in need, and which those are is guidance's
    personal data, read there with `guidance:read` and audited, not copied to webhooks)."""
    if event.get("type") in FAMILY_EVENTS:
        data = dict(event.get("data") or {})
        own = reader.family_id if reader.kind == ClientKind.parent else None
        data["family_ids"] = [f for f in data.get("family_ids") or [] if own is not None and f == own]
        return {**event, "data": data}
    if reader.sees_whole_city():
        return event
    visible = {p.facility_id for p in places if p.facility_id and _sees_place(reader, p)}
    data = dict(event.get("data") or {})
    if event.get("type") == "cradle.workforce.ban.issued":
        data["facilities"] = [f for f in _dicts(data.get("facilities")) if f.get("facility_id") in visible]
    elif event.get("type") == "cradle.workforce.certificate.expired":
        data["employed_at_facility_ids"] = [
            f for f in data.get("employed_at_facility_ids") or [] if f in visible
        ]
    return {**event, "data": data}


def facility_ids_in(event: dict[str, Any]) -> set[str]:
    """Every facility id an event's data names (for tests and the redaction check)."""
    found: set[str] = set()

    def walk(value: object, key: str = "") -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, k)
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif isinstance(value, str) and key in ("facility_id", "facility_ids", "employed_at_facility_ids"):
            found.add(value)

    walk(event.get("data"))
    return found


# --- many events, in SQL (the feed) -------------------------------------------------------------


def visible_to(reader: Identity) -> ColumnElement[bool]:
    """The feed's filter: the event rows this reader may see (before redaction)."""
    if not reads_events(reader):
        return false()
    if reader.kind == ClientKind.parent:
        if not reader.family_id or not reader.has_scope(PARENT_SCOPE):
            return false()
        return and_(
            EventRecord.type.in_(sorted(FAMILY_EVENTS)),
            exists().where(
                EventAudience.event_seq == EventRecord.seq, EventAudience.family_id == reader.family_id
            ),
        )
    own = exists().where(
        EventAudience.event_seq == EventRecord.seq, EventAudience.client_id == reader.client_id
    )
    scopes = [
        s
        for s in ("registry:read", "workforce:read", "monitoring:read", "guidance:read")
        if reader.has_scope(s)
    ]
    readable = EventRecord.scope.in_(scopes) if scopes else false()
    if reader.sees_whole_city():
        return or_(own, readable)
    if reader.kind == ClientKind.district and reader.district_code:
        place = EventAudience.district_code.in_([reader.district_code, EVERY_DISTRICT])
    elif reader.kind == ClientKind.operator:
        conditions: list[ColumnElement[bool]] = [EventAudience.owner_client_id == reader.client_id]
        if reader.facility_ids:
            conditions.append(EventAudience.facility_id.in_(reader.facility_ids))
        place = or_(*conditions)
    else:
        return own
    seen = exists().where(EventAudience.event_seq == EventRecord.seq, place)
    return or_(own, and_(readable, seen))


def type_matcher(globs: Iterable[str]) -> re.Pattern[str]:
    return _matcher(tuple(globs))


@functools.lru_cache(maxsize=4096)
def _matcher(globs: tuple[str, ...]) -> re.Pattern[str]:
    """Globs on `cradle.<service>.<entity>.<verb>`: `*` is one whole segment or part of one, `**`
    (or a final `>`) any number of segments. `cradle.workforce.ban.*`, `cradle.*.*.issued`."""
    parts = []
    for glob in globs:
        pattern = re.escape(glob).replace(r"\*\*", ".+").replace(r"\*", "[^.]*")
        if pattern.endswith(r"\.>") or pattern.endswith(">"):
            pattern = pattern.removesuffix(">") + ".+"
        parts.append(f"(?:{pattern})")
    return re.compile("^(?:" + "|".join(parts) + ")$") if parts else re.compile("^$")


async def places_by_event(session: AsyncSession, seqs: Sequence[int]) -> dict[int, list[Place]]:
    """The stored audience of these events, for redaction and replays. Not the families' rows (a
    thousand per `resource.pushed`): a family event is cut down by the reader's own family, and
    only the bureaus, who see it whole-city, ever subscribe to one."""
    found: dict[int, list[Place]] = {seq: [] for seq in seqs}
    if not seqs:
        return found
    rows = await session.execute(
        select(
            EventAudience.event_seq,
            EventAudience.facility_id,
            EventAudience.district_code,
            EventAudience.owner_client_id,
            EventAudience.client_id,
        ).where(EventAudience.event_seq.in_(list(seqs)), EventAudience.family_id.is_(None))
    )
    for seq, facility_id, district_code, owner_client_id, client_id in rows:
        found[seq].append(
            Place(
                facility_id=facility_id,
                district_code=district_code,
                owner_client_id=owner_client_id,
                client_id=client_id,
            )
        )
    return found


@functools.lru_cache(maxsize=4096)
def reader_of(identity_json: str) -> Identity:
    """A subscription's identity (its JSON as stored), parsed once: every event is checked against
    every subscription, and parsing costs more than the check. Never mutated by its users."""
    return Identity.model_validate_json(identity_json)
