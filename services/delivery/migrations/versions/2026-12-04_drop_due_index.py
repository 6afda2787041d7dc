"""`ix_delivery_due` (status, next_attempt_at) is read by nothing since the claims walk the
pending-only indexes (delivery_0002), and every delivery's insert, lease and `delivered` update
wrote an entry in it (a lease changes an indexed column, `lease_until`, so it is never a HOT update
and each of the table's indexes gets a new entry): one index fewer to write, per row, three times.

Revision ID: delivery_0004
Revises: delivery_0003
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "delivery_0004"
down_revision: str | None = "delivery_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_delivery_due", table_name="delivery")


def downgrade() -> None:
    op.create_index("ix_delivery_due", "delivery", ["status", "next_attempt_at"])
