"""Licensed facts change by review (change requests and their reviews, every review kept), fee
schedules (收费公示) with the facility's latest disclosed schedule and its flag for fees above the
inclusive cap; an application's reviews keep a department's earlier decisions too.

Revision ID: registry_0005
Revises: registry_0004
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "registry_0005"
down_revision: str | None = "registry_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN, not a batch: on SQLite a batch would rebuild `facility` and drop its
    # directory-revision triggers.
    op.add_column("facility", sa.Column("fees", sa.JSON, nullable=True))
    op.add_column(
        "facility", sa.Column("fee_cap_flagged", sa.Boolean, nullable=False, server_default=sa.false())
    )
    with op.batch_alter_table("facility_review") as batch:
        batch.drop_constraint("uq_review_department", type_="unique")
    op.create_table(
        "change_request",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("facility_id", sa.String(36), sa.ForeignKey("facility.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("changes", sa.JSON, nullable=False),
        sa.Column("fee_schedule_id", sa.String(36)),
        sa.Column("departments", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(2000), nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_change_request_facility_status", "change_request", ["facility_id", "status"])
    op.create_table(
        "change_request_review",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "change_request_id", sa.String(36), sa.ForeignKey("change_request.id"), nullable=False, index=True
        ),
        sa.Column("department", sa.String(16), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("note", sa.String(2000), nullable=False),
        sa.Column("reviewer_client_id", sa.String(64), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "fee_schedule",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("facility_id", sa.String(36), sa.ForeignKey("facility.id"), nullable=False, index=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("effective_from", sa.Date, nullable=False),
        sa.Column("fees", sa.JSON, nullable=False),
        sa.Column("meals_fen_per_month", sa.Integer),
        sa.Column("other_charges", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("max_full_day_fen", sa.Integer),
        sa.Column("cap_fen", sa.Integer),
        sa.Column("recorded_by", sa.String(64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("facility_id", "version", name="uq_fee_schedule_version"),
    )


def downgrade() -> None:
    op.drop_table("fee_schedule")
    op.drop_table("change_request_review")
    op.drop_index("ix_change_request_facility_status", table_name="change_request")
    op.drop_table("change_request")
    with op.batch_alter_table("facility_review") as batch:
        batch.create_unique_constraint("uq_review_department", ["facility_id", "department"])
    op.drop_column("facility", "fee_cap_flagged")
    op.drop_column("facility", "fees")
