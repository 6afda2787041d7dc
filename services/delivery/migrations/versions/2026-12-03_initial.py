"""Outbox and inbox, the event log and its audience, the facility projection, subscriptions,
deliveries and their attempts.

Revision ID: delivery_0001
Revises:
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.events.tables import create_event_tables, drop_event_tables

revision: str = "delivery_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SERIAL = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def _at(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    create_event_tables()
    op.create_table(
        "facility_projection",
        sa.Column("facility_id", sa.String(36), primary_key=True),
        sa.Column("district_code", sa.String(6), nullable=False),
        sa.Column("owner_client_id", sa.String(64)),
        sa.Column("version", sa.Integer, nullable=False),
        _at("source_event_at"),
    )
    op.create_table(
        "event_record",
        sa.Column("seq", SERIAL, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False, unique=True),
        sa.Column("type", sa.String(255), nullable=False, index=True),
        sa.Column("subject", sa.String(64)),
        sa.Column("scope", sa.String(32)),
        _at("time"),
        _at("recorded_at"),
        sa.Column("body", sa.Text, nullable=False),
    )
    op.create_index("ix_event_record_time", "event_record", ["time"])
    op.create_table(
        "event_audience",
        sa.Column("id", SERIAL, primary_key=True, autoincrement=True),
        sa.Column("event_seq", SERIAL, sa.ForeignKey("event_record.seq"), nullable=False, index=True),
        sa.Column("facility_id", sa.String(36)),
        sa.Column("district_code", sa.String(6)),
        sa.Column("owner_client_id", sa.String(64)),
        sa.Column("client_id", sa.String(64)),
    )
    for name, column in (
        ("facility", "facility_id"),
        ("owner", "owner_client_id"),
        ("district", "district_code"),
        ("client", "client_id"),
    ):
        op.create_index(f"ix_event_audience_{name}", "event_audience", [column, "event_seq"])
    op.create_table(
        "subscription",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("client_id", sa.String(64), nullable=False, index=True),
        sa.Column("identity", sa.JSON, nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("event_types", sa.JSON, nullable=False),
        sa.Column("description", sa.String(200)),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("disabled_reason", sa.String(300)),
        _at("disabled_at", nullable=True),
        sa.Column("secret", sa.String(100), nullable=False),
        sa.Column("previous_secret", sa.String(100)),
        _at("previous_secret_until", nullable=True),
        _at("failing_since", nullable=True),
        _at("created_at"),
        _at("updated_at"),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_table(
        "delivery",
        sa.Column("id", SERIAL, primary_key=True, autoincrement=True),
        sa.Column(
            "subscription_id",
            sa.String(36),
            sa.ForeignKey("subscription.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("event_seq", SERIAL, sa.ForeignKey("event_record.seq"), nullable=False),
        sa.Column("order_key", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        _at("next_attempt_at"),
        _at("lease_until", nullable=True),
        sa.Column("leased_by", sa.String(64)),
        _at("created_at"),
        _at("delivered_at", nullable=True),
    )
    op.create_index("ix_delivery_due", "delivery", ["status", "next_attempt_at"])
    op.create_index("ix_delivery_order", "delivery", ["subscription_id", "order_key", "id"])
    op.create_table(
        "delivery_attempt",
        sa.Column("id", SERIAL, primary_key=True, autoincrement=True),
        sa.Column("delivery_id", SERIAL, sa.ForeignKey("delivery.id", ondelete="CASCADE"), nullable=False),
        sa.Column(
            "subscription_id",
            sa.String(36),
            sa.ForeignKey("subscription.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(255), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        _at("attempted_at"),
        sa.Column("status_code", sa.Integer),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error", sa.String(500)),
        sa.Column("response_excerpt", sa.Text),
    )
    op.create_index("ix_delivery_attempt_delivery_id", "delivery_attempt", ["delivery_id"])
    op.create_index("ix_delivery_attempt_subscription", "delivery_attempt", ["subscription_id", "id"])


def downgrade() -> None:
    op.drop_table("delivery_attempt")
    op.drop_table("delivery")
    op.drop_table("subscription")
    op.drop_table("event_audience")
    op.drop_table("event_record")
    op.drop_table("facility_projection")
    drop_event_tables()
