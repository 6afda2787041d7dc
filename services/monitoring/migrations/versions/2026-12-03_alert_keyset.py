"""Alerts in their list's order (newest first, then by id), for a facility and city-wide, so that a
page after a cursor, and an export of every page, read the index in order instead of sorting every
alert of the facility again for each page.

Revision ID: monitoring_0007
Revises: monitoring_0006
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "monitoring_0007"
down_revision: str | None = "monitoring_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_alert_facility_raised", "alert", ["facility_id", "raised_at", "id"])
    op.create_index("ix_alert_raised", "alert", ["raised_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_alert_raised", table_name="alert")
    op.drop_index("ix_alert_facility_raised", table_name="alert")
