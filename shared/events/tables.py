"""The outbox and inbox tables every service database has. SQLAlchemy Core, because the relay and
the consumer runner are hot paths and ORM objects cost ~130 µs each."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, MetaData, String, Table, Text

OUTBOX = "outbox"
INBOX = "inbox"


def outbox_table(metadata: MetaData) -> Table:
    return Table(
        OUTBOX,
        metadata,
        # SQLite only autoincrements an INTEGER PRIMARY KEY, PostgreSQL gets a BIGINT identity.
        Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),  # CloudEvent id = Nats-Msg-Id
        Column("subject", String(255), nullable=False),
        Column("payload", Text, nullable=False),  # the CloudEvent, JSON
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("sent_at", DateTime(timezone=True), nullable=True),
        Column("attempts", Integer, nullable=False, default=0),
        Column("last_error", Text, nullable=True),
        Index("ix_outbox_pending", "sent_at", "seq"),
    )


def inbox_table(metadata: MetaData) -> Table:
    return Table(
        INBOX,
        metadata,
        Column("consumer", String(128), primary_key=True),
        Column("event_id", String(64), primary_key=True),
        Column("event_type", String(255), nullable=False),
        Column("handled_at", DateTime(timezone=True), nullable=False),
    )


def create_event_tables(bind: object) -> None:
    """For a service's first migration: the outbox and inbox as declared above."""
    metadata = MetaData()
    outbox_table(metadata)
    inbox_table(metadata)
    metadata.create_all(bind)  # type: ignore[arg-type]


def drop_event_tables(bind: object) -> None:
    metadata = MetaData()
    outbox_table(metadata)
    inbox_table(metadata)
    metadata.drop_all(bind)  # type: ignore[arg-type]
