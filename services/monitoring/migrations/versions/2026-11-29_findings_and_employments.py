"""Findings kept one by one (a district's abuse finding is proposed, EDU confirms or rejects it) and
the projection of the workforce's employments a finding may name.

Every finding decided before this revision lives on in its incident and its transitions.

Revision ID: monitoring_0005
Revises: monitoring_0004
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "monitoring_0005"
down_revision: str | None = "monitoring_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "incident_finding",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("incident_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("abuser_practitioner_ids", sa.JSON(), nullable=False),
        sa.Column("responsible_manager_ids", sa.JSON(), nullable=False),
        sa.Column("decision_ref", sa.String(length=200), nullable=False),
        sa.Column("note", sa.String(length=2000), nullable=False),
        sa.Column("recorded_by", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reviewed_by", sa.String(length=64), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("review_ref", sa.String(length=200), nullable=True),
        sa.Column("review_note", sa.String(length=2000), nullable=True),
        sa.ForeignKeyConstraint(["incident_id"], ["incident.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_incident_finding_incident_id", "incident_finding", ["incident_id"], unique=False)
    op.create_table(
        "employment_projection",
        sa.Column("employment_id", sa.String(length=36), nullable=False),
        sa.Column("practitioner_id", sa.String(length=36), nullable=False),
        sa.Column("facility_id", sa.String(length=36), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=True),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("employment_id"),
    )
    op.create_index(
        "ix_employment_projection_facility",
        "employment_projection",
        ["facility_id", "practitioner_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_employment_projection_facility", table_name="employment_projection")
    op.drop_table("employment_projection")
    op.drop_index("ix_incident_finding_incident_id", table_name="incident_finding")
    op.drop_table("incident_finding")
