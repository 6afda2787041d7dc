"""Employment standing and changes: `standing` (provisional until its background check is clear,
suspended on a flagged one, cleared), the check it waits on, a health certificate pending or
expired, social insurance since when, a version for If-Match; `employment_change`, the history of
every change to an employment.

Revision ID: workforce_0006
Revises: workforce_0005
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "workforce_0006"
down_revision: str | None = "workforce_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("employment") as batch:
        # Employments from before this revision were hired under the old rules: cleared.
        batch.add_column(sa.Column("standing", sa.String(16), nullable=False, server_default="cleared"))
        batch.add_column(sa.Column("background_check_id", sa.String(36), nullable=True))
        batch.add_column(
            sa.Column("health_certificate_pending", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("health_flagged_on", sa.Date(), nullable=True))
        batch.add_column(sa.Column("suspended_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("social_insurance_since", sa.Date(), nullable=True))
        batch.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
        batch.create_index("ix_employment_standing", ["standing", "suspended_at"])
        batch.create_index("ix_employment_background_check", ["background_check_id"])
    op.create_table(
        "employment_change",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("employment_id", sa.String(36), sa.ForeignKey("employment.id"), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("note", sa.String(1000), nullable=True),
        sa.Column("changed_by", sa.String(64), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_employment_change_employment", "employment_change", ["employment_id", "changed_at"])


def downgrade() -> None:
    op.drop_index("ix_employment_change_employment", table_name="employment_change")
    op.drop_table("employment_change")
    with op.batch_alter_table("employment") as batch:
        batch.drop_index("ix_employment_background_check")
        batch.drop_index("ix_employment_standing")
        for column in (
            "version",
            "social_insurance_since",
            "suspended_at",
            "health_flagged_on",
            "health_certificate_pending",
            "background_check_id",
            "standing",
        ):
            batch.drop_column(column)
