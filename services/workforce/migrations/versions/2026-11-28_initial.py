"""Facility projection, outbox and inbox.

Revision ID: workforce_0001
Revises:
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.events.tables import create_event_tables, drop_event_tables

revision: str = "workforce_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "facility_projection",
        sa.Column("facility_id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("district_code", sa.String(6), nullable=False, index=True),
        sa.Column("town_code", sa.String(9), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("owner_client_id", sa.String(64)),
        sa.Column("source_event_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    create_event_tables()


def downgrade() -> None:
    drop_event_tables()
    op.drop_table("facility_projection")
