"""The event log: each source event stored once with its audience, and a delivery row for every
enabled subscription that asked for its type and may see it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import Row, Select, String, Text, bindparam, cast, insert, select, update
from sqlalchemy import event as orm_events
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from services.delivery.models import (
    Delivery,
    EventAudience,
    EventRecord,
    FacilityProjection,
    ParentLink,
    Subscription,
)
from services.delivery.service.audience import (
    Place,
    ProjectedFacility,
    facility_ids_in,
    may_see,
    places_of,
    reader_of,
    scope_of,
    type_matcher,
)
from shared.clock import utcnow
from shared.contracts import contract_for, payload_of
from shared.contracts.guidance import FamilyLinked
from shared.contracts.registry import FacilityFacts
from shared.events.envelope import CloudEvent
from shared.rows import RowsInsert, one_of

log = structlog.get_logger("cradle.delivery.log")

PROJECTIONS = FacilityProjection.__table__
EVENTS = EventRecord.__table__
AUDIENCES = EventAudience.__table__
DELIVERIES = Delivery.__table__
# The columns `owed` fills, and those the same for every delivery owed at once (see `owe`).
OWE_DELIVERIES = RowsInsert(
    DELIVERIES,
    ("subscription_id", "event_seq", "order_key"),
    constants=("status", "attempts", "next_attempt_at", "created_at"),
)
BAN_RESCINDED = "cradle.workforce.ban.rescinded"  # its audience is read from the stored ban's

# Set on a session that recorded events or owes deliveries; its commit wakes the sender and the
# feed's open streams (app.py puts the callable under ON_DELIVERIES_COMMIT).
DELIVERIES_DIRTY = "cradle_deliveries_dirty"
ON_DELIVERIES_COMMIT = "cradle_on_deliveries_commit"


@orm_events.listens_for(Session, "after_commit")
def _wake_after_commit(session: Session) -> None:
    if session.info.pop(DELIVERIES_DIRTY, False):
        wake = session.info.get(ON_DELIVERIES_COMMIT)
        if wake is not None:
            wake()


@orm_events.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(DELIVERIES_DIRTY, None)


# Events name people by id only (docs/EVENTS.md), but a producer's free text (a review note, a
# reason, a facility's name) may quote what would be personal data in clear: a resident ID number,
# a mainland mobile number. Such an event is still delivered (its producer may say it), with those
# digits masked in every copy Cradle sends or serves: subscribers never receive them.
_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])\d{17}[0-9Xx](?![0-9A-Za-z])")
_MOBILE = re.compile(r"(?<![0-9A-Za-z+])1[3-9]\d{9}(?![0-9A-Za-z])")


def _masked(found: re.Match[str]) -> str:
    return "*" * len(found.group())  # the same length, so the field still meets its contract


def without_personal_data(data: Any, path: str = "data") -> tuple[Any, list[str]]:
    """`data` with every ID or mobile number masked, and the paths of the fields that held one."""
    if isinstance(data, dict):
        cleaned: dict[str, Any] = {}
        paths: list[str] = []
        for key, value in data.items():
            cleaned[key], found = without_personal_data(value, f"{path}.{key}")
            paths += found
        return (cleaned, paths) if paths else (data, [])
    if isinstance(data, list):
        items, paths = [], []
        for index, value in enumerate(data):
            item, found = without_personal_data(value, f"{path}[{index}]")
            items.append(item)
            paths += found
        return (items, paths) if paths else (data, [])
    if isinstance(data, str):
        cleaned_text = _MOBILE.sub(_masked, _ID_NUMBER.sub(_masked, data))
        return (cleaned_text, [path]) if cleaned_text != data else (data, [])
    return data, []


def as_sent(event: CloudEvent) -> CloudEvent:
    """The event as Cradle stores and sends it: personal data masked (logged by path, never value)."""
    data, paths = without_personal_data(event.data)
    if not paths:
        return event
    log.warning("event_personal_data_masked", event_id=event.id, event_type=event.type, fields=paths)
    return event.model_copy(update={"data": data})


def _as_utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def update_facility(*, session: AsyncSession, event: CloudEvent) -> FacilityProjection:
    """Keep the newest district and owner of a facility, by its version and then the event's time.
    Returns the projection: a caller that holds it while it records the event spares a read (the
    session's identity map holds its rows only weakly)."""
    facts = payload_of(event, FacilityFacts)
    projection = await session.get(FacilityProjection, facts.facility_id)
    if projection is None:
        projection = FacilityProjection(
            facility_id=facts.facility_id,
            district_code=facts.district_code,
            owner_client_id=facts.owner_client_id,
            version=facts.version,
            source_event_at=event.time,
        )
        session.add(projection)
        await session.flush()
        return projection
    if (facts.version, _as_utc(event.time)) <= (projection.version, _as_utc(projection.source_event_at)):
        return projection
    projection.district_code = facts.district_code
    projection.owner_client_id = facts.owner_client_id
    projection.version = facts.version
    projection.source_event_at = event.time
    await session.flush()
    return projection


async def link_parent(*, session: AsyncSession, event: CloudEvent) -> None:
    """Keep the family a parent's account belongs to (the newest link, should guidance ever move it)."""
    link = payload_of(event, FamilyLinked)
    known = await session.get(ParentLink, link.parent_id)
    if known is None:
        session.add(ParentLink(parent_id=link.parent_id, family_id=link.family_id, linked_at=link.linked_at))
    elif _as_utc(link.linked_at) >= _as_utc(known.linked_at):
        known.family_id, known.linked_at = link.family_id, link.linked_at
    await session.flush()


async def record_event(*, session: AsyncSession, event: CloudEvent) -> int:
    """Store the event, its audience and the deliveries it is owed; returns its feed position."""
    payload_of(event, contract_for(event.type))  # the producer's contract, or a dead letter
    event = as_sent(event)
    places = await places_of(session, event)
    scope = scope_of(event.type)
    seq = (
        await session.execute(
            insert(EventRecord)
            .values(
                event_id=event.id,
                type=event.type,
                subject=event.subject,
                scope=scope,
                time=event.time,
                recorded_at=utcnow(),
                body=event.model_dump_json(),
            )
            .returning(EventRecord.seq)
        )
    ).scalar_one()
    if places:
        await session.execute(insert(AUDIENCES), audience_rows(seq, places))
    session.info[DELIVERIES_DIRTY] = True
    await owe_deliveries(session=session, event=event, seq=seq, scope=scope, places=places)
    return seq


def held_against_deletion(query: Select[Any]) -> Select[Any]:
    """`query`, holding the subscriptions it reads until the transaction ends, for one that adds
    rows for them: the delivery tables have no foreign keys, and service/subscriptions.py's
    `delete` locks a subscription FOR UPDATE first, so it waits for the rows' writer, or the writer
    for it and then finds the subscription gone. FOR KEY SHARE: what a foreign key's check takes
    (several writers at once; `key_share=True` alone would be FOR NO KEY UPDATE, exclusive between
    them). PostgreSQL's; SQLite has one writer."""
    return query.with_for_update(read=True, key_share=True)


# Columns, not entities, and the identity as its JSON text (parsed once per distinct identity):
# every event is checked against every subscription; held until the deliveries owed are committed.
ENABLED_SUBSCRIPTIONS = held_against_deletion(
    select(Subscription.id, cast(Subscription.identity, Text), Subscription.event_types).where(
        Subscription.enabled.is_(True)
    )
)
# Which of `subscription_ids` still exist, held (the sender's recording, a replay).
SUBSCRIPTIONS_HELD = held_against_deletion(
    select(Subscription.id).where(one_of(Subscription.id, "subscription_ids", String()))
)


async def owe_deliveries(
    *, session: AsyncSession, event: CloudEvent, seq: int, scope: str | None, places: list[Place]
) -> int:
    subscriptions = (await session.execute(ENABLED_SUBSCRIPTIONS)).all()
    rows = owed(subscriptions, event=event, seq=seq, scope=scope, places=places)
    await owe(session, rows, now=utcnow())
    return len(rows)


def audience_rows(seq: int, places: list[Place]) -> list[dict[str, Any]]:
    return [
        {
            "event_seq": seq,
            "facility_id": p.facility_id,
            "district_code": p.district_code,
            "owner_client_id": p.owner_client_id,
            "client_id": p.client_id,
            "family_id": p.family_id,
        }
        for p in places
    ]


def owed(
    subscriptions: Sequence[Row[Any]],
    *,
    event: CloudEvent,
    seq: int,
    scope: str | None,
    places: list[Place],
) -> list[tuple[str, int, str]]:
    """A delivery (its OWE_DELIVERIES columns) for each subscription that asked for the event's type
    and may see it."""
    rows: list[tuple[str, int, str]] = []
    order_key = (event.subject or event.id)[:64]
    for subscription_id, identity, event_types in subscriptions:
        if not type_matcher(event_types).match(event.type):
            continue
        if not may_see(reader_of(identity), scope=scope, places=places):
            continue
        rows.append((subscription_id, seq, order_key))
    return rows


async def owe(session: AsyncSession, rows: Sequence[tuple[str, int, str]], *, now: datetime) -> None:
    """The deliveries `owed`, pending and due now; the session's commit wakes the sender."""
    if rows:
        await OWE_DELIVERIES.run(
            session, rows, status="pending", attempts=0, next_attempt_at=now, created_at=now
        )
        session.info[DELIVERIES_DIRTY] = True


# --- many events in one transaction (the consumer's batches) ------------------------------------

PROJECTION_UPDATE = (
    update(PROJECTIONS)
    .where(PROJECTIONS.c.facility_id == bindparam("b_facility_id"))
    .values(
        district_code=bindparam("b_district_code"),
        owner_client_id=bindparam("b_owner_client_id"),
        version=bindparam("b_version"),
        source_event_at=bindparam("b_source_event_at"),
    )
)


@dataclass
class FacilityBook:
    """The projections of the facilities a batch of events names: read in one statement, kept in
    memory in the events' order by `update_facility`'s rule, written back in two."""

    known: dict[str, ProjectedFacility | None]
    added: set[str] = field(default_factory=set)
    changed: set[str] = field(default_factory=set)

    @classmethod
    async def read(cls, session: AsyncSession, events: Sequence[CloudEvent]) -> FacilityBook:
        book = cls(known={})
        await book._read(session, {f for event in events for f in facility_ids_in({"data": event.data})})
        return book

    async def _read(self, session: AsyncSession, facility_ids: set[str]) -> None:
        self.known.update(dict.fromkeys(facility_ids))
        if not facility_ids:
            return
        rows = await session.execute(select(PROJECTIONS).where(PROJECTIONS.c.facility_id.in_(facility_ids)))
        for row in rows:
            self.known[row.facility_id] = ProjectedFacility(
                facility_id=row.facility_id,
                district_code=row.district_code,
                owner_client_id=row.owner_client_id,
                version=row.version,
                source_event_at=row.source_event_at,
            )

    async def keep(self, session: AsyncSession, facts: FacilityFacts, at: datetime) -> None:
        facility_id = facts.facility_id
        if facility_id not in self.known:
            await self._read(session, {facility_id})
        held = self.known[facility_id]
        if held is None:
            self.known[facility_id] = ProjectedFacility(
                facility_id=facility_id,
                district_code=facts.district_code,
                owner_client_id=facts.owner_client_id,
                version=facts.version,
                source_event_at=at,
            )
            self.added.add(facility_id)
            return
        if (facts.version, _as_utc(at)) <= (held.version, _as_utc(held.source_event_at)):
            return
        held.district_code, held.owner_client_id = facts.district_code, facts.owner_client_id
        held.version, held.source_event_at = facts.version, at
        if facility_id not in self.added:
            self.changed.add(facility_id)

    async def write(self, session: AsyncSession) -> None:
        rows = [(facility_id, self.known[facility_id]) for facility_id in sorted(self.added | self.changed)]
        added = [vars(p) for f, p in rows if p is not None and f in self.added]
        if added:
            await session.execute(insert(PROJECTIONS), added)
        changed = [
            {f"b_{name}": value for name, value in vars(p).items()}
            for f, p in rows
            if p is not None and f in self.changed
        ]
        if changed:
            await session.execute(PROJECTION_UPDATE, changed)


async def record_events(*, session: AsyncSession, events: Sequence[CloudEvent]) -> None:
    """What handlers.py does event by event (keep the facility projection or the parent's link, then
    `record_event`), for a batch in arrival order with the same outcome, in a handful of statements
    for the whole batch: the projections read and written once, the subscriptions read once, the
    events, their audiences and their deliveries inserted together."""
    facilities = await FacilityBook.read(session, events)
    subscriptions = (await session.execute(ENABLED_SUBSCRIPTIONS)).all()
    waiting: list[tuple[CloudEvent, str | None, list[Place]]] = []
    for event in events:
        facts = payload_of(event, contract_for(event.type))  # the producer's contract, or a dead letter
        event = as_sent(event)
        if isinstance(facts, FacilityFacts):
            await facilities.keep(session, facts, event.time)
        elif isinstance(facts, FamilyLinked):
            await link_parent(session=session, event=event)
        if event.type == BAN_RESCINDED and waiting:
            await _store(session, waiting, subscriptions)
            waiting = []
        waiting.append((event, scope_of(event.type), await places_of(session, event, facilities.known)))
    await facilities.write(session)
    await _store(session, waiting, subscriptions)


async def _store(
    session: AsyncSession,
    waiting: list[tuple[CloudEvent, str | None, list[Place]]],
    subscriptions: Sequence[Row[Any]],
) -> None:
    now = utcnow()
    # The rows come back mapped by event_id, so their order does not matter. Asked for it on SQLite,
    # SQLAlchemy inserts one row a statement (600 statements for 600 events); unasked, one INSERT
    # numbers them in the order given, as PostgreSQL does with it.
    sqlite = session.get_bind().dialect.name == "sqlite"
    stored = await session.execute(
        insert(EVENTS).returning(EVENTS.c.event_id, EVENTS.c.seq, sort_by_parameter_order=not sqlite),
        [
            {
                "event_id": event.id,
                "type": event.type,
                "subject": event.subject,
                "scope": scope,
                "time": event.time,
                "recorded_at": now,
                "body": event.model_dump_json(),
            }
            for event, scope, _ in waiting
        ],
    )
    seqs: dict[str, int] = {event_id: seq for event_id, seq in stored}
    audiences: list[dict[str, Any]] = []
    deliveries: list[tuple[str, int, str]] = []
    for event, scope, places in waiting:
        seq = seqs[event.id]
        audiences.extend(audience_rows(seq, places))
        deliveries.extend(owed(subscriptions, event=event, seq=seq, scope=scope, places=places))
    if audiences:
        await session.execute(insert(AUDIENCES), audiences)
    await owe(session, deliveries, now=now)
    session.info[DELIVERIES_DIRTY] = True  # the events alone are news to the feed's streams
