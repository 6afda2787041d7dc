"""Which deliveries a replica sends next, and leasing them. Due deliveries are claimed by leasing
them, a row of `delivery_lease` each (PostgreSQL: its key, and the delivery rows locked `FOR SHARE
SKIP LOCKED`, so two replicas never claim one delivery; SQLite has one writer): per enabled
subscription, its oldest due deliveries that head their subject (no earlier one of the subject
still pending), no more than it may have out at once. Each query walks a pending-only index per
subscription and stops at the few it may send, however long the backlog."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Select,
    String,
    Text,
    and_,
    bindparam,
    cast,
    func,
    literal,
    select,
    true,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from services.delivery.models import PENDING, Delivery, DeliveryLease, EventRecord, Subscription
from services.delivery.service.audience import places_by_event, reader_of, redacted
from shared.identity import Identity
from shared.rows import one_of

NEVER = literal(datetime(1970, 1, 1, tzinfo=UTC), DateTime(timezone=True))  # the lease of an unleased row
DELIVERY = Delivery.__table__
LEASES = DeliveryLease.__table__
SUBSCRIPTION = Subscription.__table__
EVENT = EventRecord.__table__

# The statements are built once (building them costs more than running them), with parameters;
# a list is one parameter (`one_of`), so each is one statement, prepared once, whatever its length.

# These are PostgreSQL's: SQLite's round runs the same rules as one call on its connection's thread
# (service/sqlite_round.py), its statements written out there.

# Leases held now, by any replica, per subscription (a lease table of a few rows per subscription).
BUSY = (
    select(LEASES.c.subscription_id, func.count())
    .where(LEASES.c.lease_until > bindparam("now"))
    .group_by(LEASES.c.subscription_id)
)


def _heads() -> Select[tuple[int, str]]:
    """A subscription's first sendable deliveries: due, not leased now, and each the oldest pending
    one of its subject. Both tests are scalar subqueries, never anti-joins: one probe of an index per
    row whatever the planner's statistics say (PostgreSQL made NOT EXISTS a join that read every
    pending row of the subscription for each candidate)."""
    due, earlier = DELIVERY.alias("due"), DELIVERY.alias("earlier")
    return (
        select(due.c.id, due.c.subscription_id)
        .where(
            due.c.subscription_id == SUBSCRIPTION.c.id,
            due.c.status == PENDING,
            due.c.next_attempt_at.is_not(None),  # the due index's condition (models.py)
            due.c.next_attempt_at <= bindparam("now"),
            func.coalesce(
                select(LEASES.c.lease_until).where(LEASES.c.delivery_id == due.c.id).scalar_subquery(),
                NEVER,
            )
            <= bindparam("now"),
            due.c.id
            == select(func.min(earlier.c.id))
            .where(
                earlier.c.subscription_id == due.c.subscription_id,
                earlier.c.order_key == due.c.order_key,
                earlier.c.status == PENDING,
            )
            .scalar_subquery(),
        )
        .order_by(due.c.next_attempt_at, due.c.id)
        .limit(bindparam("per_subscription"))
    )


_WITH_ROOM = and_(SUBSCRIPTION.c.enabled.is_(True), ~one_of(SUBSCRIPTION.c.id, "full", String()))
_LATERAL = _heads().lateral("heads")
# Each enabled subscription with room joined to its heads.
CANDIDATES_LATERAL = (
    select(_LATERAL.c.id, _LATERAL.c.subscription_id)
    .select_from(SUBSCRIPTION)
    .join(_LATERAL, true())
    .where(_WITH_ROOM)
    .order_by(_LATERAL.c.id)
    .limit(bindparam("batch"))
)
# A lease is a row of its own: inserted, or a lapsed one taken over (its attempt counted on, as that
# attempt may have been sent). Only deliveries still pending, locked (FOR SHARE: a replica recording
# one as delivered holds it, and once that commits the locked row is its new version, no longer
# pending), skipping those another replica holds; in id order, so two replicas wait on each other's
# keys in the same order. A lease another replica took since the candidates were read is left to it.
# Each id is looked up by the key, and only then checked for pending: given `status = 'pending'`
# beside the ids and no statistics yet, the planner counted the pending rows as a handful and read a
# pending-only index through for every round's lease (0.6 s a round at 10,000 pending).
_WANTED = (
    func.unnest(bindparam("ids", type_=postgresql.ARRAY(BigInteger())))
    .table_valued("id")
    .render_derived(name="wanted")
)
_ONE = (
    select(DELIVERY.c.id, DELIVERY.c.subscription_id, DELIVERY.c.attempts, DELIVERY.c.status)
    .where(DELIVERY.c.id == _WANTED.c.id)
    .with_for_update(read=True, skip_locked=True)
    .lateral("one")
)
_TO_LEASE = (
    select(
        _ONE.c.id,
        _ONE.c.subscription_id,
        bindparam("until", type_=LEASES.c.lease_until.type),
        bindparam("worker", type_=LEASES.c.leased_by.type),
        _ONE.c.attempts + 1,
    )
    .select_from(_WANTED.join(_ONE, true()))
    .where(_ONE.c.status == PENDING)
    .order_by(_ONE.c.id)
)
_TAKE = postgresql.insert(LEASES).from_select(
    ["delivery_id", "subscription_id", "lease_until", "leased_by", "attempt"], _TO_LEASE
)
LEASE = _TAKE.on_conflict_do_update(
    index_elements=[LEASES.c.delivery_id],
    set_={
        "lease_until": _TAKE.excluded.lease_until,
        "leased_by": _TAKE.excluded.leased_by,
        "attempt": LEASES.c.attempt + 1,
    },
    where=LEASES.c.lease_until <= bindparam("now"),
).returning(LEASES.c.delivery_id, LEASES.c.attempt)

# What a claimed attempt needs besides the delivery's own id, attempt and event: its subscription
# and the event's body.
_TARGET = (
    SUBSCRIPTION.c.id.label("subscription_id"),
    cast(SUBSCRIPTION.c.identity, Text).label("identity"),
    SUBSCRIPTION.c.url,
    SUBSCRIPTION.c.secret,
    SUBSCRIPTION.c.previous_secret,
    SUBSCRIPTION.c.previous_secret_until,
    SUBSCRIPTION.c.failing_since,
    EVENT.c.body,
)

# The lease and the leased rows in one statement (a round trip fewer a round; the rounds
# follow one another, so each of theirs holds back every freed lease).
_JUST_LEASED = LEASE.cte("just_leased")
LEASE_AND_READ = (
    select(
        _JUST_LEASED.c.delivery_id.label("id"),
        _JUST_LEASED.c.attempt.label("attempts"),
        DELIVERY.c.event_seq,
        *_TARGET,
    )
    .join(DELIVERY, DELIVERY.c.id == _JUST_LEASED.c.delivery_id)
    .join(SUBSCRIPTION, SUBSCRIPTION.c.id == DELIVERY.c.subscription_id)
    .join(EVENT, EVENT.c.seq == DELIVERY.c.event_seq)
    .order_by(_JUST_LEASED.c.delivery_id)
)


@dataclass(slots=True)
class Claimed:
    delivery_id: int
    subscription_id: str
    attempt: int
    event_id: str
    event_type: str
    url: str
    secrets: list[str]
    body: bytes  # the event as this reader may see it, JSON, as sent
    # The subscription had failed when claimed: a success must clear its `failing_since`.
    failing: bool = False
    # The request that caused the event, and its trace: on every log line of the attempt.
    request_id: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None
    # When its lease lapses (and another replica may claim it): not sent after that.
    lease_until: datetime | None = None


async def claim(
    session: AsyncSession, *, now: datetime, limit: int, batch: int, lease_seconds: float, worker_id: str
) -> tuple[list[Claimed], bool]:
    """PostgreSQL: lease up to `batch` due deliveries, at most `limit` in flight per subscription
    (leases held by any replica count), and return them ready to send, and whether the batch cut the
    candidates short (more may be due now). SQLite's claim is service/sqlite_round.py's."""
    busy = dict((await session.execute(BUSY, {"now": now})).all())
    full = [subscription for subscription, count in busy.items() if count >= limit]
    parameters = {"now": now, "per_subscription": limit, "batch": batch, "full": full}
    candidates = [(d, s) for d, s in await session.execute(CANDIDATES_LATERAL, parameters)]
    ids, more = pick(candidates, busy, limit=limit, batch=batch)
    if not ids:
        return [], more
    until = now + timedelta(seconds=lease_seconds)
    lease = {"ids": ids, "now": now, "until": until, "worker": worker_id}
    rows = (await session.execute(LEASE_AND_READ, lease)).all()
    if not rows:
        return [], more
    return await ready(session, rows, now, until), more


def pick(
    candidates: list[tuple[int, str]], busy: dict[str, int], *, limit: int, batch: int
) -> tuple[list[int], bool]:
    """Of the candidates (delivery, subscription) in order, those each subscription has room for
    (`limit` less the leases it holds), and whether the batch cut the candidates short."""
    room = {subscription: limit - busy.get(subscription, 0) for _, subscription in candidates}
    ids = []
    for delivery_id, subscription in candidates:
        if room[subscription] > 0:
            room[subscription] -= 1
            ids.append(delivery_id)
    return ids, len(candidates) >= batch


async def ready(session: AsyncSession, rows: Any, now: datetime, until: datetime) -> list[Claimed]:
    """Each claimed delivery with its body as its reader may see it. An event fans out to many
    subscriptions in one claim: it is parsed once, and redacted once for every reader who sees the
    whole city and once per other reader."""
    readers: dict[str, Identity] = {}
    for row in rows:
        if row.subscription_id not in readers:
            readers[row.subscription_id] = reader_of(row.identity)
    cut = {row.event_seq for row in rows if not readers[row.subscription_id].sees_whole_city()}
    places = await places_by_event(session, sorted(cut)) if cut else {}
    originals: dict[int, dict[str, Any]] = {}
    bodies: dict[tuple[int, str | None], bytes] = {}
    claimed = []
    for row in rows:
        reader = readers[row.subscription_id]
        original = originals.get(row.event_seq)
        if original is None:
            original = originals[row.event_seq] = json.loads(row.body)
        key = (row.event_seq, None if reader.sees_whole_city() else row.subscription_id)
        body = bodies.get(key)
        if body is None:
            event = redacted(reader, original, places.get(row.event_seq, []))
            body = bodies[key] = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
        claimed.append(
            Claimed(
                delivery_id=row.id,
                subscription_id=row.subscription_id,
                attempt=row.attempts,
                event_id=str(original["id"]),
                event_type=str(original["type"]),
                url=row.url,
                secrets=_secrets(row.secret, row.previous_secret, row.previous_secret_until, now),
                body=body,
                failing=row.failing_since is not None,
                request_id=original.get("requestid"),
                traceparent=original.get("traceparent"),
                tracestate=original.get("tracestate"),
                lease_until=until,
            )
        )
    return claimed


def _secrets(
    secret: str, previous_secret: str | None, previous_until: datetime | None, now: datetime
) -> list[str]:
    """The subscription's secret, and during a rotation's grace period the previous one too."""
    if previous_secret and previous_until is not None:
        if (previous_until if previous_until.tzinfo else previous_until.replace(tzinfo=UTC)) > now:
            return [secret, previous_secret]
    return [secret]
