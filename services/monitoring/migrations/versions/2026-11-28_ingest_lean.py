"""CCTV events keep only the indexes the service reads by: the event id (duplicates) and the
arrival time (retention). The (camera, time) index cost ~40 % of ingest throughput and served no
query.

Revision ID: monitoring_0004
Revises: monitoring_0003
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from alembic import op

revision: str = "monitoring_0004"
down_revision: str | None = "monitoring_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_cctv_event_camera_occurred", table_name="cctv_event")


def downgrade() -> None:
    op.create_index("ix_cctv_event_camera_occurred", "cctv_event", ["camera_id", "occurred_at"])
