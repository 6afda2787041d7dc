"""The sender's claim reads only pending deliveries: indexes over those alone (partial, `WHERE
status = 'pending'`), so that a claim walks each subscription's due rows in order and stops at the
few it may send, checks a subject's earlier pending delivery in the index, and counts the leased
ones without reading the delivered rows, which only grow.

Revision ID: delivery_0002
Revises: delivery_0001
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "delivery_0002"
down_revision: str | None = "delivery_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = sa.text("status = 'pending'")
INDEXES = {
    "ix_delivery_pending_due": ["subscription_id", "next_attempt_at", "id"],
    "ix_delivery_pending_subject": ["subscription_id", "order_key", "id"],
    "ix_delivery_pending_lease": ["lease_until", "subscription_id"],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "delivery", columns, postgresql_where=PENDING, sqlite_where=PENDING)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="delivery")
