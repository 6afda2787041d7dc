"""The event log: each source event stored once with its audience, and a delivery row for every
enabled subscription that asked for its type and may see it."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Text, cast, insert, select
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
from services.delivery.service.audience import Place, may_see, places_of, reader_of, scope_of, type_matcher
from shared.contracts import contract_for, payload_of
from shared.contracts.guidance import FamilyLinked
from shared.contracts.registry import FacilityFacts
from shared.events.envelope import CloudEvent

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


# Events name people by id only (docs/EVENTS.md). What would be personal data in clear, were a
# producer ever to slip: a resident ID number, a mainland mobile number.
_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])\d{17}[0-9Xx](?![0-9A-Za-z])")
_MOBILE = re.compile(r"(?<![0-9A-Za-z+])1[3-9]\d{9}(?![0-9A-Za-z])")


class PersonalDataInEvent(ValueError):
    """An event that carries what looks like personal data is never stored or sent (dead letter)."""


def assert_no_personal_data(data: object, path: str = "data") -> None:
    if isinstance(data, dict):
        for key, value in data.items():
            assert_no_personal_data(value, f"{path}.{key}")
    elif isinstance(data, list):
        for index, value in enumerate(data):
            assert_no_personal_data(value, f"{path}[{index}]")
    elif isinstance(data, str) and (_ID_NUMBER.search(data) or _MOBILE.search(data)):
        raise PersonalDataInEvent(f"{path} looks like an ID or phone number; events carry no personal data")


def utcnow() -> datetime:
    return datetime.now(UTC)


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
    assert_no_personal_data(event.data)
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
        await session.execute(
            insert(EventAudience),
            [
                {
                    "event_seq": seq,
                    "facility_id": p.facility_id,
                    "district_code": p.district_code,
                    "owner_client_id": p.owner_client_id,
                    "client_id": p.client_id,
                    "family_id": p.family_id,
                }
                for p in places
            ],
        )
    session.info[DELIVERIES_DIRTY] = True
    await owe_deliveries(session=session, event=event, seq=seq, scope=scope, places=places)
    return seq


async def owe_deliveries(
    *, session: AsyncSession, event: CloudEvent, seq: int, scope: str | None, places: list[Place]
) -> int:
    # Columns, not entities, and the identity as its JSON text (parsed once per distinct identity):
    # this runs for every subscription on every event.
    subscriptions = await session.execute(
        select(Subscription.id, cast(Subscription.identity, Text), Subscription.event_types).where(
            Subscription.enabled.is_(True)
        )
    )
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for subscription_id, identity, event_types in subscriptions:
        if not type_matcher(event_types).match(event.type):
            continue
        if not may_see(reader_of(identity), scope=scope, places=places):
            continue
        rows.append(
            {
                "subscription_id": subscription_id,
                "event_seq": seq,
                "order_key": (event.subject or event.id)[:64],
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
        )
    if rows:
        await session.execute(insert(Delivery), rows)
        session.info[DELIVERIES_DIRTY] = True
    return len(rows)
