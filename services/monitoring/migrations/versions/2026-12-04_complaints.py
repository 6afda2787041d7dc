"""Complaints (投诉): the complaint, its two working-day deadlines and escalations, the complainant's
sealed name and phone, and the audit of every unmasked read of them (pii_access).

Revision ID: monitoring_0008
Revises: monitoring_0007
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "monitoring_0008"
down_revision: str | None = "monitoring_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _at(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "complaint",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("reference", sa.String(16), nullable=False),
        sa.Column("code_hash", sa.String(64)),
        sa.Column("facility_id", sa.String(36), sa.ForeignKey("facility.id"), nullable=False),
        sa.Column("district_code", sa.String(6), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("description", sa.String(4000), nullable=False),
        sa.Column("complainant_kind", sa.String(16), nullable=False),
        sa.Column("complainant_client_id", sa.String(64)),
        sa.Column("name_key_id", sa.String(32)),
        sa.Column("name_encrypted", sa.String(400)),
        sa.Column("phone_key_id", sa.String(32)),
        sa.Column("phone_encrypted", sa.String(200)),
        sa.Column("lodged_by", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _at("lodged_at"),
        _at("acknowledge_due_at"),
        _at("answer_due_at"),
        _at("acknowledged_at", nullable=True),
        sa.Column("acknowledged_by", sa.String(64)),
        _at("acknowledge_escalated_at", nullable=True),
        _at("answer_escalated_at", nullable=True),
        sa.Column("outcome", sa.String(16)),
        sa.Column("answer", sa.String(4000)),
        _at("answered_at", nullable=True),
        sa.Column("answered_by", sa.String(64)),
        sa.Column("version", sa.Integer, nullable=False),
        _at("updated_at"),
        sa.UniqueConstraint("reference", name="uq_complaint_reference"),
    )
    op.create_index("ix_complaint_district_status", "complaint", ["district_code", "status", "lodged_at"])
    op.create_index("ix_complaint_facility", "complaint", ["facility_id", "lodged_at"])
    op.create_index("ix_complaint_lodged", "complaint", ["lodged_at", "id"])
    op.create_index("ix_complaint_complainant", "complaint", ["complainant_client_id", "lodged_at"])
    op.create_index("ix_complaint_answer_due", "complaint", ["status", "answer_due_at"])
    op.create_table(
        "pii_access",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("accessed_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("client_id", sa.String(64), nullable=False, index=True),
        sa.Column("record_type", sa.String(32), nullable=False),
        sa.Column("record_id", sa.String(36), nullable=False, index=True),
        sa.Column("fields", sa.String(100), nullable=False),
        sa.Column("purpose", sa.String(300), nullable=False),
        sa.Column("request_id", sa.String(128)),
    )


def downgrade() -> None:
    op.drop_table("pii_access")
    op.drop_table("complaint")
