"""The casework's additions: the note of a rectification, and indexes for a parent's own reports
and a district's inspections.

Revision ID: monitoring_0003
Revises: monitoring_0002
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "monitoring_0003"
down_revision: str | None = "monitoring_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("inspection", sa.Column("rectification_note", sa.String(length=2000), nullable=True))
    op.create_index("ix_inspection_district_status", "inspection", ["district_code", "status"], unique=False)
    op.create_index("ix_incident_reporter", "incident", ["reporter_client_id", "reported_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_incident_reporter", table_name="incident")
    op.drop_index("ix_inspection_district_status", table_name="inspection")
    with op.batch_alter_table("inspection") as batch:
        batch.drop_column("rectification_note")
