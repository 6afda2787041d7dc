"""The keyed audit chain: each record names the HMAC key of its hash, the chain head records where
keyed records begin and a MAC over its retention anchor.

Records written before this revision keep their SHA-256 hashes (`key_id` NULL): the migration has
no key to re-hash them with, and re-hashing would destroy the evidence they are. `keyed_from_seq`
stays NULL until the gateway writes its first keyed record, so replicas still running the previous
release during a rolling upgrade cannot break the chain's rule "every record from there on is keyed".

Revision ID: gateway_audit_keyed
Revises: gateway_parent_phones
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "gateway_audit_keyed"
down_revision: str | None = "gateway_parent_phones"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_record") as batch:
        batch.add_column(sa.Column("key_id", sa.String(16), nullable=True))
    with op.batch_alter_table("audit_chain_head") as batch:
        batch.add_column(sa.Column("anchor_mac", sa.String(64), nullable=True))
        batch.add_column(sa.Column("keyed_from_seq", sa.BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_chain_head") as batch:
        batch.drop_column("keyed_from_seq")
        batch.drop_column("anchor_mac")
    with op.batch_alter_table("audit_record") as batch:
        batch.drop_column("key_id")
