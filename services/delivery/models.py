"""delivery's tables, in its own metadata: the event log (each source event stored once, with the
facilities, districts, client or families it is about), the facility projection and the parents'
family links that decide those, the subscriptions, one delivery row per (subscription, event) and
every attempt to send it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Text,
    literal_column,
    text,
)
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from shared.events.tables import inbox_table, outbox_table


class DeliveryModel(SQLModel, registry=registry()):
    pass


metadata = DeliveryModel.metadata
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)

# SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
SERIAL = BigInteger().with_variant(Integer, "sqlite")
# Partial indexes' condition, and the term a query must carry (literally) to use them.
PENDING_ONLY = text("status = 'pending'")
PENDING_AND_TIMED = text("status = 'pending' AND next_attempt_at IS NOT NULL")
PENDING = literal_column("'pending'")  # compared as a literal, so the planner may use those indexes
EVERY_DISTRICT = "*"  # an audience row for events every district may read (city sessions, resources)


def _at(*, nullable: bool = False, index: bool = False) -> Column[datetime]:
    return Column(DateTime(timezone=True), nullable=nullable, index=index)


class FacilityProjection(DeliveryModel, table=True):
    """Which district a facility is in and which operator client applied for it, from the
    registry's facility events: what decides who may see an event about the facility."""

    __tablename__ = "facility_projection"

    facility_id: str = Field(primary_key=True, max_length=36)
    district_code: str = Field(max_length=6)
    owner_client_id: str | None = Field(default=None, max_length=64)
    version: int = 0
    source_event_at: datetime = Field(sa_column=_at())


class ParentLink(DeliveryModel, table=True):
    """Which family a parent's account belongs to, from guidance's `family.linked`: what shows a
    parent its family's events (the token's own `family_id` is a hint that grants nothing)."""

    __tablename__ = "parent_link"

    parent_id: str = Field(primary_key=True, max_length=64)
    family_id: str = Field(max_length=36, index=True)
    linked_at: datetime = Field(sa_column=_at())


class EventRecord(DeliveryModel, table=True):
    """A source event, once (the consumer's inbox), numbered in arrival order: `seq` is the feed's
    cursor. `scope` is what a reader needs to see it (`<service>:read`); none for the events about a
    client's own subscriptions, which only that client sees."""

    __tablename__ = "event_record"
    __table_args__ = (Index("ix_event_record_time", "time"),)

    seq: int | None = Field(default=None, sa_column=Column(SERIAL, primary_key=True, autoincrement=True))
    event_id: str = Field(max_length=64, unique=True)
    type: str = Field(max_length=255, index=True)
    subject: str | None = Field(default=None, max_length=64)
    scope: str | None = Field(default=None, max_length=32)
    time: datetime = Field(sa_column=_at())
    recorded_at: datetime = Field(sa_column=_at())
    body: str = Field(sa_column=Column(Text, nullable=False))  # the CloudEvent, JSON, as received


class EventAudience(DeliveryModel, table=True):
    """Who besides the city's bureaus may see an event: a facility (its operator, and its district),
    a district (or every district, `*`), one client, or one family (its parents). An event with no
    row is the bureaus' only."""

    __tablename__ = "event_audience"
    __table_args__ = (
        Index("ix_event_audience_facility", "facility_id", "event_seq"),
        Index("ix_event_audience_owner", "owner_client_id", "event_seq"),
        Index("ix_event_audience_district", "district_code", "event_seq"),
        Index("ix_event_audience_client", "client_id", "event_seq"),
        Index("ix_event_audience_family", "family_id", "event_seq"),
    )

    id: int | None = Field(default=None, sa_column=Column(SERIAL, primary_key=True, autoincrement=True))
    event_seq: int = Field(
        sa_column=Column(SERIAL, ForeignKey("event_record.seq"), nullable=False, index=True)
    )
    facility_id: str | None = Field(default=None, max_length=36)
    district_code: str | None = Field(default=None, max_length=6)
    owner_client_id: str | None = Field(default=None, max_length=64)
    client_id: str | None = Field(default=None, max_length=64)
    family_id: str | None = Field(default=None, max_length=36)


class Subscription(DeliveryModel, table=True):
    """A client's webhook. `identity` is the caller as it subscribed (kind, district, facilities,
    scopes): what it may read decides what is sent. The secret signs every delivery; after a
    rotation the previous one signs too until `previous_secret_until`."""

    __tablename__ = "subscription"

    id: str = Field(primary_key=True, max_length=36)
    client_id: str = Field(max_length=64, index=True)
    identity: dict[str, object] = Field(sa_column=Column(JSON, nullable=False))
    url: str = Field(max_length=2048)
    event_types: list[str] = Field(sa_column=Column(JSON, nullable=False))
    description: str | None = Field(default=None, max_length=200)
    enabled: bool = True
    disabled_reason: str | None = Field(default=None, max_length=300)
    disabled_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    secret: str = Field(max_length=100)
    previous_secret: str | None = Field(default=None, max_length=100)
    previous_secret_until: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    failing_since: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    created_at: datetime = Field(sa_column=_at())
    updated_at: datetime = Field(sa_column=_at())
    version: int = 1


class Delivery(DeliveryModel, table=True):
    """One event owed to one subscription: pending until an attempt succeeds, then delivered.
    `order_key` (the event's subject) keeps a subscription's events about one entity in order: only
    the oldest pending one of a key is sent. `attempts` counts the recorded attempts.

    The sender's hot table, so it carries no more than it must write: no foreign keys (each row's
    check locked its subscription's row, one lock per insert and per recording; who may add rows is
    decided by locking the subscription once, see service/subscriptions.py's `delete`), no lease
    (a lease is a row of `delivery_lease`, so leasing writes no new version of this row) and no
    index beside the pending-only ones but its key. A subscription's delivered rows are found by
    their attempts (every delivered row has one, of the same subscription)."""

    __tablename__ = "delivery"
    __table_args__ = (
        # The sender's claim reads pending rows only (a query names `status = 'pending'` as a
        # literal, or the planner cannot use these). The due walk's index asks for a due time too,
        # which only the walk names (`next_attempt_at IS NOT NULL`): the probe for a subject's
        # oldest pending row cannot take it instead of the subject's. Both begin with the subscription,
        # and with no statistics yet they cost the same to the planner, which then took the due
        # index for the probe and read every pending row of the subscription at each.
        Index(
            "ix_delivery_pending_due",
            "subscription_id",
            "next_attempt_at",
            "id",
            postgresql_where=PENDING_AND_TIMED,
            sqlite_where=PENDING_AND_TIMED,
        ),
        Index(
            "ix_delivery_pending_subject",
            "subscription_id",
            "order_key",
            "id",
            postgresql_where=PENDING_ONLY,
            sqlite_where=PENDING_ONLY,
        ),
    )

    id: int | None = Field(default=None, sa_column=Column(SERIAL, primary_key=True, autoincrement=True))
    subscription_id: str = Field(max_length=36)
    event_seq: int = Field(sa_column=Column(SERIAL, nullable=False))
    order_key: str = Field(max_length=64)
    status: str = Field(max_length=16)  # pending | delivered
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_column=_at())
    created_at: datetime = Field(sa_column=_at())
    delivered_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))


class DeliveryLease(DeliveryModel, table=True):
    """A pending delivery claimed by a sender (`leased_by`) until `lease_until`: taken by an insert,
    given back by a delete once its attempt is recorded. A lapsed lease stays until the delivery is
    claimed again, so `attempt` (the attempt this lease is for) keeps counting an attempt that was
    sent and never recorded. A few rows per subscription at most (it may hold
    `per_subscription_leased`): counting the leases held reads the whole table."""

    __tablename__ = "delivery_lease"

    delivery_id: int = Field(sa_column=Column(SERIAL, primary_key=True, autoincrement=False))
    subscription_id: str = Field(max_length=36)
    lease_until: datetime = Field(sa_column=_at())
    leased_by: str = Field(max_length=64)
    attempt: int


class DeliveryAttempt(DeliveryModel, table=True):
    """Every attempt: what came back (status, latency, the first KiB of the reply) or what failed.
    No foreign keys, as `delivery` has none: an attempt is recorded only while its subscription
    exists (the recording locks it)."""

    __tablename__ = "delivery_attempt"
    __table_args__ = (Index("ix_delivery_attempt_subscription", "subscription_id", "id"),)

    id: int | None = Field(default=None, sa_column=Column(SERIAL, primary_key=True, autoincrement=True))
    delivery_id: int = Field(sa_column=Column(SERIAL, nullable=False))
    subscription_id: str = Field(max_length=36)
    event_id: str = Field(max_length=64)
    event_type: str = Field(max_length=255)
    attempt: int
    attempted_at: datetime = Field(sa_column=_at())
    status_code: int | None = None
    latency_ms: float
    outcome: str = Field(max_length=16)  # delivered | failed
    error: str | None = Field(default=None, max_length=500)
    response_excerpt: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
