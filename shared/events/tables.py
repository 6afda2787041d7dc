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
        Column("next_attempt_at", DateTime(timezone=True), nullable=True),  # set after a refusal
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


def create_event_tables() -> None:
    """For a service's first migration: the outbox and inbox, written out here so that this
    migration never changes. A later change to the tables above gets a migration of its own."""
    from alembic import op  # alembic (with mako and pygments) only where migrations run: ~0.3 s a start

    op.create_table(
        OUTBOX,
        Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("subject", String(255), nullable=False),
        Column("payload", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("sent_at", DateTime(timezone=True), nullable=True),
        Column("attempts", Integer, nullable=False),
        Column("next_attempt_at", DateTime(timezone=True), nullable=True),
        Column("last_error", Text, nullable=True),
    )
    op.create_index("ix_outbox_pending", OUTBOX, ["sent_at", "seq"])
    op.create_table(
        INBOX,
        Column("consumer", String(128), primary_key=True),
        Column("event_id", String(64), primary_key=True),
        Column("event_type", String(255), nullable=False),
        Column("handled_at", DateTime(timezone=True), nullable=False),
    )


def drop_event_tables() -> None:
    from alembic import op

    op.drop_table(INBOX)
    op.drop_index("ix_outbox_pending", table_name=OUTBOX)
    op.drop_table(OUTBOX)
