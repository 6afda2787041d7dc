"""Who may see a practitioner because it registered them: the first registrant and every client
whose registration by ID number found the existing record (hiring needs the person visible).

Revision ID: workforce_0005
Revises: workforce_0004
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "workforce_0005"
down_revision: str | None = "workforce_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "practitioner_access",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("practitioner_id", sa.String(length=36), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["practitioner_id"], ["practitioner.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("practitioner_id", "client_id", name="uq_practitioner_access"),
    )
    op.create_index("ix_practitioner_access_client_id", "practitioner_access", ["client_id"], unique=False)
    # Every practitioner so far was visible to whoever registered it: keep that.
    op.execute(
        "INSERT INTO practitioner_access (id, practitioner_id, client_id, granted_at) "
        "SELECT id, id, registered_by, created_at FROM practitioner"
    )


def downgrade() -> None:
    op.drop_index("ix_practitioner_access_client_id", table_name="practitioner_access")
    op.drop_table("practitioner_access")
