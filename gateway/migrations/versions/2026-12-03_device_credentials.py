"""Device credentials: the NATS credentials the gateway issued to facilities' video systems (public
halves only) and their revocations.

Revision ID: gateway_device_credentials
Revises: gateway_audit_keyed
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "gateway_device_credentials"
down_revision: str | None = "gateway_audit_keyed"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "device_credential",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("facility_id", sa.String(64), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("nats_user", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_by", sa.String(64)),
    )
    op.create_index("ix_device_credential_facility", "device_credential", ["facility_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_device_credential_facility", table_name="device_credential")
    op.drop_table("device_credential")
