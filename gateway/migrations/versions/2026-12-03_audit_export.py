"""Audit records say when a list was answered as a file (CSV, XLSX): `export`, its media type.

Revision ID: gateway_audit_export
Revises: gateway_device_credentials
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "gateway_audit_export"
down_revision: str | None = "gateway_device_credentials"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("audit_record", sa.Column("export", sa.String(100), nullable=True))


def downgrade() -> None:
    op.drop_column("audit_record", "export")
