"""Idempotency-Key records for the workforce's POSTs.

Revision ID: workforce_0003
Revises: workforce_0002
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from alembic import op

from shared.idempotency import IDEMPOTENCY, create_idempotency_table

revision: str = "workforce_0003"
down_revision: str | None = "workforce_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_idempotency_table()


def downgrade() -> None:
    op.drop_table(IDEMPOTENCY)
