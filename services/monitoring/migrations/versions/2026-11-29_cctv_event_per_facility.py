"""A CCTV event is unique per facility, not across the city: `event_id` is the sender's own id, and
two facilities' video systems may well use the same ones. The primary key becomes
(event_id, facility_id), so one facility's ids no longer suppress another's events.

Revision ID: monitoring_0006
Revises: monitoring_0005
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "monitoring_0006"
down_revision: str | None = "monitoring_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def cctv_event(*key: str) -> sa.Table:
    """The table as it is, with `key` as its primary key: SQLite's copy is made from this."""
    return sa.Table(
        "cctv_event",
        sa.MetaData(),
        sa.Column("event_id", sa.String(length=100), nullable=False),
        sa.Column("camera_id", sa.String(length=36), nullable=False),
        sa.Column("facility_id", sa.String(length=36), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint(*key, name="cctv_event_pkey"),
        sa.Index("ix_cctv_event_received", "received_at"),
    )


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("cctv_event_pkey", "cctv_event", type_="primary")
        op.create_primary_key("cctv_event_pkey", "cctv_event", ["event_id", "facility_id"])
        return
    # SQLite cannot alter a primary key: the table is copied into one with the new key.
    with op.batch_alter_table(
        "cctv_event", recreate="always", copy_from=cctv_event("event_id", "facility_id")
    ):
        pass


def downgrade() -> None:
    # Back to one event per id in the city: of ids that several facilities used, one row stays.
    op.execute(
        "DELETE FROM cctv_event WHERE EXISTS (SELECT 1 FROM cctv_event AS other "
        "WHERE other.event_id = cctv_event.event_id AND other.facility_id < cctv_event.facility_id)"
    )
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("cctv_event_pkey", "cctv_event", type_="primary")
        op.create_primary_key("cctv_event_pkey", "cctv_event", ["event_id"])
        return
    with op.batch_alter_table("cctv_event", recreate="always", copy_from=cctv_event("event_id")):
        pass
